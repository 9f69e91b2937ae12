"""Score any model's DIS predictions: folders of PNG masks, one per split, against DIS5K's ground truth.

``pred_root`` holds ``DIS-VD/``, ``DIS-TE1/`` ... with one ``<stem>.png`` mask per ground truth, as IS-Net and
BiRefNet write them. Each prediction is matched to ``<DIS5K>/<split>/gt/<stem>.png`` by file stem, resized
bilinearly to the ground truth's size when it differs, and scored with the DIS protocol
(:class:`~visionzoo.metrics.dis.DISMetrics`: maxFb, wFb, MAE, Sa, mean/max Em, HCE at the GT's resolution). Only
the ``gt/`` folders are read. Splits found in only one of the two roots are skipped with a line saying so.
The result is the same per-split table as model evaluation, with the DIS-TE mean.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from visionzoo.data.dis5k import DIS5K_TEST_SPLITS, dis5k_root, image_size
from visionzoo.data.images import IMAGE_SUFFIXES, read_mask
from visionzoo.errors import DataError
from visionzoo.evaluate.common import check_on_missing, listing, report_problems
from visionzoo.metrics.dis import REPORTED_METRICS, SCORE_NAMES, SkeletonCache, score_image, summarize_scores
from visionzoo.progress import file_progress

log = logging.getLogger(__name__)


def _masks(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def score_prediction_file(prediction: Path, gt: Path, skeleton_dir: str | None) -> dict[str, np.ndarray] | str:
    """DIS scores of one prediction file against its GT file, or the reason it cannot be scored."""
    try:
        pred, truth = read_mask(prediction), read_mask(gt)
    except DataError as err:
        return str(err)
    if pred.shape != truth.shape:
        pred = cv2.resize(pred, (truth.shape[1], truth.shape[0]), interpolation=cv2.INTER_LINEAR)
    skeleton = SkeletonCache(skeleton_dir).get(truth > 128, str(gt)) if skeleton_dir else None
    return score_image(pred, truth, skeleton)


class DISPredictionsEvaluator:
    """Per-split DIS metrics of a folder of predicted masks.

    Args:
        pred_root: folder of split folders of ``<stem>.png`` predictions.
        root: the DIS5K root (``data.root``; the folder holding the split folders, or its parent).
        splits: the splits to score.
        on_missing: ``raise``: one error listing the missing, extra and unreadable predictions of a split;
            ``skip``: list them in a warning and score the images that have a readable prediction.
        skeleton_dir: cache folder for HCE's GT skeletons (``None``: none).
        workers: processes that score images in parallel (1: in this process).
        name: the ``model`` column of the table (default: the ``pred_root`` folder's name).
    """

    def __init__(self, pred_root: str, root: str, splits: Sequence[str] = DIS5K_TEST_SPLITS, on_missing: str = "raise",
                 skeleton_dir: str | None = None, workers: int = 1, name: str | None = None) -> None:
        self.on_missing = check_on_missing(on_missing)
        self.pred_root = Path(pred_root).expanduser()
        if not self.pred_root.is_dir():
            raise DataError(f"pred_root {self.pred_root} is not a folder; pass the folder holding DIS-VD/, DIS-TE1/ ...")
        self.root = dis5k_root(root)
        self.splits = list(splits)
        self.skeleton_dir = str(skeleton_dir) if skeleton_dir else None
        self.workers, self.name = max(1, int(workers)), name or self.pred_root.name

    def matched_files(self, split: str) -> list[tuple[Path, Path]]:
        """(prediction, GT) pairs of a split; the missing and extra predictions raise or are reported."""
        predictions, truths = _masks(self.pred_root / split), _masks(self.root / split / "gt")
        missing, extra = sorted(set(truths) - set(predictions)), sorted(set(predictions) - set(truths))
        matched = sorted(set(truths) & set(predictions))
        unreadable = [stem for stem in matched if image_size(predictions[stem]) is None]
        problems = [f"{len(missing)} ground truths without a prediction ({listing(missing)})"] * bool(missing)
        problems += [f"{len(extra)} predictions without a ground truth ({listing(extra)})"] * bool(extra)
        problems += [f"{len(unreadable)} unreadable predictions "
                     f"({listing([predictions[s].name for s in unreadable])})"] * bool(unreadable)
        report_problems(str(self.pred_root / split), problems, self.on_missing)
        return [(predictions[stem], truths[stem]) for stem in matched if stem not in unreadable]

    def scorable_splits(self) -> list[str]:
        """The requested splits present in both roots; the others are named in one line each."""
        found = []
        for split in self.splits:
            has_pred, has_gt = (self.pred_root / split).is_dir(), (self.root / split / "gt").is_dir()
            if has_pred and has_gt:
                found.append(split)
            elif has_pred or has_gt:
                where = f"no {split}/ in pred_root {self.pred_root}" if has_gt else f"no {split}/gt in {self.root}"
                log.warning("%s: %s; skipped", split, where)
        if not found:
            raise DataError(f"no split of {', '.join(self.splits)} has both predictions in {self.pred_root} and "
                            f"ground truth in {self.root}; pred_root must hold folders named like DIS-VD/")
        return found

    def run(self) -> list[dict[str, Any]]:
        splits = self.scorable_splits()
        jobs = {split: self.matched_files(split) for split in splits}
        rows = []
        with file_progress() as bar, ProcessPoolExecutor(self.workers) if self.workers > 1 else _InProcess() as pool:
            for split in splits:
                scored: dict[str, list[np.ndarray]] = {name: [] for name in SCORE_NAMES}
                unreadable = []
                task = bar.add_task(split, total=len(jobs[split]))
                scores = pool.map(score_prediction_file, *zip(*jobs[split]), [self.skeleton_dir] * len(jobs[split]))
                for (prediction, _), score in zip(jobs[split], scores):
                    if isinstance(score, str):
                        unreadable.append(prediction.name)
                    else:
                        for name in SCORE_NAMES:
                            scored[name].append(score[name])
                    bar.advance(task)
                report_problems(str(self.pred_root / split),  # a readable header over broken pixel data
                                [f"{len(unreadable)} unreadable predictions ({listing(unreadable)})"] * bool(unreadable),
                                self.on_missing)
                if len(unreadable) == len(jobs[split]):
                    raise DataError(f"{self.pred_root / split}: no prediction could be scored")
                values = summarize_scores({name: np.stack(values) for name, values in scored.items()})
                rows.append({"split": split, "model": self.name, **{k: values[k] for k in REPORTED_METRICS},
                             "images": len(jobs[split]) - len(unreadable)})
        test_rows = [r for r in rows if r["split"].startswith("DIS-TE")]
        if len(test_rows) > 1:
            mean = {k: float(np.mean([r[k] for r in test_rows])) for k in REPORTED_METRICS}
            rows.append({"split": f"DIS-TE (1-{len(test_rows)}) mean", "model": self.name, **mean,
                         "images": sum(r["images"] for r in test_rows)})
        return rows


class _InProcess:
    """``map`` in this process, with the executor's context-manager shape."""

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(function, *iterables):
        return map(function, *iterables)
