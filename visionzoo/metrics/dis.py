"""The DIS benchmark metrics (maxFb, wFb, MAE, Sa, mean/max Em, HCE) through PySODMetrics.

Each image is scored by pysodmetrics at the ground truth's original resolution and its per-image results (F and
E curves over 256 thresholds, wFb, Sa, MAE, HCE) are kept as metric states, so the metric syncs across processes
like any torchmetrics ``Metric``. ``compute`` follows the standard protocol: maxFb is the maximum of the
dataset-mean F curve (beta^2 = 0.3), mean/max Em come from the dataset-mean E curve, the rest are image means.

HCE (relax 5, epsilon 2) is fed the prediction binarised at > 128 without min-max stretching, as the DIS authors'
own code does; the other metrics use pysodmetrics' default min-max normalised prediction. GT skeletons, the costly
part of HCE, are computed once per GT file and cached on disk when a cache folder and keys are given.

Beside them, the BEN paper's own metrics (:data:`BEN_PAPER_METRICS`, :func:`ben_paper_scores`), defined as the
BEN repository's ``test.py`` defines them, so its DIS-VD table can be reproduced.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator, Sequence

import cv2
import numpy as np
import py_sod_metrics
import py_sod_metrics.sod_metrics as sod_metrics_module
import torch
from skimage import morphology
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

#: Column order of DIS papers.
DIS_METRIC_ORDER = ("maxFb", "wFb", "MAE", "Sa", "meanEm", "HCE")
HCE_RELAX = 5
HCE_EPSILON = 2.0
#: The BEN paper's metrics (PramaLLC/BEN ``test.py``), image means; see :func:`ben_paper_scores`.
BEN_PAPER_METRICS = ("benMAE", "Dice", "IoU", "BER", "Acc")
#: Every column the DIS evaluators report, in order.
REPORTED_METRICS = (*DIS_METRIC_ORDER, "maxEm", *BEN_PAPER_METRICS)
#: BEN's test.py scores both masks resized to this square size.
BEN_PAPER_SIZE = 1024
#: BEN's smoothing terms: Dice and IoU add 1e-5 to both sides of the ratio, BER adds 1e-8 to the class counts.
BEN_SMOOTH, BEN_BER_EPS = 1e-5, 1e-8
#: The per-image results of :func:`score_image`.
SCORE_NAMES = ("fm_curve", "em_curve", "wfm", "sm", "mae", "hce", "ben_mae", "dice", "iou", "ber", "acc")
_BEN_SCORES = dict(zip(("ben_mae", "dice", "iou", "ber", "acc"), BEN_PAPER_METRICS))


class SkeletonCache:
    """GT skeletons on disk, keyed by the GT file's path, size and modification time."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def get(self, gt: np.ndarray, key: str) -> np.ndarray:
        path = self._path(key)
        if path.exists():
            cached = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if cached is not None and cached.shape == gt.shape:
                return cached > 0
        skeleton = morphology.skeletonize(gt)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
        cv2.imwrite(str(tmp), skeleton.astype(np.uint8) * 255)
        os.replace(tmp, path)
        return skeleton

    def _path(self, key: str) -> Path:
        stat = os.stat(key) if os.path.exists(key) else None
        ident = f"{os.path.abspath(key)}|{stat.st_size if stat else ''}|{stat.st_mtime_ns if stat else ''}"
        return self.directory / f"{hashlib.sha1(ident.encode()).hexdigest()}.png"


@contextmanager
def _given_skeleton(skeleton: np.ndarray) -> Iterator[None]:
    """Let pysodmetrics' HCE use a precomputed GT skeleton instead of skeletonising the GT again."""
    original = sod_metrics_module.morphology
    sod_metrics_module.morphology = SimpleNamespace(skeletonize=lambda _gt: skeleton, disk=original.disk)
    try:
        yield
    finally:
        sod_metrics_module.morphology = original


def ben_paper_scores(pred: np.ndarray, gt: np.ndarray, size: int = BEN_PAPER_SIZE) -> dict[str, np.float64]:
    """The BEN paper's per-image metrics of uint8 ``pred`` and ``gt`` (HxW), as PramaLLC/BEN's ``test.py`` computes
    them: both resized to ``size`` x ``size`` (prediction bilinear, ground truth nearest, OpenCV, still uint8), then
    scaled to [0, 1] (float32) as ``p`` and ``g``:

    * ``ben_mae``: mean ``|p - g|`` (the soft masks);
    * ``dice``: ``(2 sum(p g) + 1e-5) / (sum(g) + sum(p) + 1e-5)``, over the soft masks;
    * ``iou``: ``(|P & G| + 1e-5) / (|P | G| + 1e-5)`` with ``P = p > 0.5``, ``G = g > 0.5``;
    * ``ber``: ``1 - (TP / (|G| + 1e-8) + TN / (|not G| + 1e-8)) / 2`` with ``P = p >= 0.5``;
    * ``acc``: the share of pixels where ``p >= 0.5`` equals ``G``.
    """
    p = cv2.resize(pred, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / np.float32(255)
    g = cv2.resize(gt, (size, size), interpolation=cv2.INTER_NEAREST).astype(np.float32) / np.float32(255)
    hard_gt = g > 0.5
    above, at_least = p > 0.5, p >= 0.5
    true_pos = np.logical_and(at_least, hard_gt).sum()
    true_neg = np.logical_and(~at_least, ~hard_gt).sum()
    ber = 1 - (true_pos / (hard_gt.sum() + BEN_BER_EPS) + true_neg / ((~hard_gt).sum() + BEN_BER_EPS)) / 2
    return {
        "ben_mae": np.float64(np.mean(np.abs(p - g))),
        "dice": np.float64((2 * np.sum(g * p) + BEN_SMOOTH) / (np.sum(g) + np.sum(p) + BEN_SMOOTH)),
        "iou": np.float64((np.logical_and(above, hard_gt).sum() + BEN_SMOOTH)
                          / (np.logical_or(above, hard_gt).sum() + BEN_SMOOTH)),
        "ber": np.float64(ber),
        "acc": np.float64(np.equal(at_least, hard_gt).sum() / at_least.size),
    }


def score_image(pred: np.ndarray, gt: np.ndarray, skeleton: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-image DIS results for uint8 ``pred`` and ``gt`` of the same HxW shape (gt foreground > 128), and the
    BEN paper's (:func:`ben_paper_scores`)."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ; resize the prediction first")
    results: dict[str, np.ndarray] = dict(ben_paper_scores(pred, gt))
    with warnings.catch_warnings():  # pysodmetrics nudges towards FmeasureV2; Fmeasure is the DIS protocol's
        warnings.simplefilter("ignore", UserWarning)
        fm = py_sod_metrics.Fmeasure()
    em = py_sod_metrics.Emeasure()
    wfm, sm, mae = py_sod_metrics.WeightedFmeasure(), py_sod_metrics.Smeasure(), py_sod_metrics.MAE()
    for metric in (fm, em, wfm, sm, mae):
        metric.step(pred, gt)
    results["fm_curve"] = np.asarray(fm.get_results()["fm"]["curve"], dtype=np.float64)
    results["em_curve"] = np.asarray(em.get_results()["em"]["curve"], dtype=np.float64)
    results["wfm"] = np.float64(wfm.get_results()["wfm"])
    results["sm"] = np.float64(sm.get_results()["sm"])
    results["mae"] = np.float64(mae.get_results()["mae"])
    hce = py_sod_metrics.HumanCorrectionEffortMeasure(relax=HCE_RELAX, epsilon=HCE_EPSILON)
    pred_binary, gt_binary = (pred > 128).astype(np.float64), gt > 128
    if skeleton is None:
        hce.step(pred_binary, gt_binary, normalize=False)
    else:
        with _given_skeleton(skeleton):
            hce.step(pred_binary, gt_binary, normalize=False)
    results["hce"] = np.float64(hce.get_results()["hce"])
    return results


class DISMetrics(Metric):
    """DIS metrics over a dataset; ``update(preds, gts, keys=None)`` takes lists of uint8 HxW arrays.

    ``keys`` (e.g. the GT file paths) enable the on-disk skeleton cache in ``skeleton_dir``.
    ``compute()`` returns ``maxFb, wFb, MAE, Sa, meanEm, maxEm, HCE`` as floats and leaves the dataset-mean curves
    in :attr:`mean_curves` (see :func:`mean_curves`), from the same (synced) states.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, skeleton_dir: str | os.PathLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.skeletons = SkeletonCache(skeleton_dir) if skeleton_dir else None
        self.mean_curves: dict[str, np.ndarray] = {}
        for name in SCORE_NAMES:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], keys: Sequence[str] | None = None) -> None:
        for index, (pred, gt) in enumerate(zip(preds, gts)):
            skeleton = None
            if self.skeletons is not None and keys is not None:
                skeleton = self.skeletons.get(gt > 128, keys[index])
            for name, value in score_image(pred, gt, skeleton).items():
                getattr(self, name).append(torch.as_tensor(value, dtype=torch.float64, device=self.device).reshape(1, -1))

    def compute(self) -> dict[str, float]:
        if isinstance(self.mae, list) and not self.mae:  # after a DDP sync the states are concatenated tensors
            raise RuntimeError("DISMetrics.compute() called before any update")
        scores = {name: dim_zero_cat(getattr(self, name)).cpu() for name in SCORE_NAMES}
        self.mean_curves = mean_curves(scores)
        return summarize_scores(scores)


def mean_curves(scores: dict[str, torch.Tensor | np.ndarray]) -> dict[str, np.ndarray]:
    """The dataset-mean F-measure (beta^2 = 0.3) and E-measure curves, ``{"F": (256,), "E": (256,)}`` indexed by
    the binarisation threshold 0..255 (a pixel is foreground when >= the threshold); pysodmetrics' curves run from
    threshold 255 down to 0."""
    return {key: np.asarray(scores[name], dtype=np.float64).mean(axis=0)[::-1].copy()
            for key, name in (("F", "fm_curve"), ("E", "em_curve"))}


def summarize_scores(scores: dict[str, torch.Tensor | np.ndarray]) -> dict[str, float]:
    """The dataset's metrics (:data:`REPORTED_METRICS`) from per-image results stacked over images (``(N, 256)``
    curves, ``(N,)`` or ``(N, 1)`` values): maxFb / mean and max Em from the mean curves, the rest image means."""
    curves = mean_curves(scores)
    fm_curve, em_curve = curves["F"], curves["E"]
    mean = {name: float(np.asarray(scores[name], dtype=np.float64).mean())
            for name in ("wfm", "sm", "mae", "hce", *_BEN_SCORES)}
    return {"maxFb": float(fm_curve.max()), "wFb": mean["wfm"], "MAE": mean["mae"], "Sa": mean["sm"],
            "meanEm": float(em_curve.mean()), "maxEm": float(em_curve.max()), "HCE": mean["hce"],
            **{column: mean[name] for name, column in _BEN_SCORES.items()}}


class AgreementMetrics(DISMetrics):
    """DIS metrics against a soft reference mask (a teacher's), plus ``softMAE``: the mean absolute difference
    between the prediction and the soft reference in [0, 1], neither binarised nor stretched.

    The DIS metrics see the reference binarised at > 128 (0.5), as pysodmetrics reads any ground truth.
    """

    def __init__(self, skeleton_dir: str | os.PathLike | None = None, **kwargs) -> None:
        super().__init__(skeleton_dir, **kwargs)
        self.add_state("soft_mae", default=[], dist_reduce_fx="cat")

    def update(self, preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], keys: Sequence[str] | None = None) -> None:
        super().update(preds, gts, keys)
        for pred, gt in zip(preds, gts):
            value = np.abs(pred.astype(np.float64) - gt.astype(np.float64)).mean() / 255.0
            self.soft_mae.append(torch.tensor([value], dtype=torch.float64, device=self.device))

    def compute(self) -> dict[str, float]:
        return {**super().compute(), "softMAE": float(dim_zero_cat(self.soft_mae).mean())}
