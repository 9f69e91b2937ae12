"""Score any model's Occ3D predictions (FlashOCC, BEVDet, SurroundOcc, the zoo's ``predict.py`` ...) with the
benchmark's mIoU, with and without the camera mask.

Predictions are ``.npz`` files holding the labels ``(X, Y, Z)`` (an array named ``semantics``, or the file's only
array), either as ``<pred_root>/<scene>/<token>/labels.npz`` (Occ3D's own layout, what ``predict.py`` writes) or
as ``<pred_root>/<token>.npz``. The ground truth is ``labels.npz`` under ``data.root``: the samples of the split's
BEVDet info pickle when the root has one, otherwise every ``labels.npz`` found under the root (the token is its
folder's name). Missing, extra, unreadable and wrong-shape predictions are listed by token: in one error line, or,
with ``on_missing=skip``, in a warning, the rest scored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from visionzoo.constants import OCC3D_CLASSES, OCC3D_FREE
from visionzoo.data.occ3d import INFO_FILES, load_infos, read_labels, resolve_path
from visionzoo.errors import DataError
from visionzoo.evaluate.common import check_on_missing, listing, report_problems
from visionzoo.geometry import OCC3D_GRID, OccupancyGrid, as_grid
from visionzoo.metrics.occupancy import OccupancyMIoU
from visionzoo.progress import file_progress

log = logging.getLogger(__name__)
PREDICTION_ARRAY = "semantics"


def ground_truth_files(root: Path, split: str, info_file: str | None = None) -> dict[str, Path]:
    """``{token: labels.npz}`` of the split (from its info pickle), or of every ``labels.npz`` under ``root``."""
    info = root / (info_file or INFO_FILES.get(split, ""))
    if info.is_file():
        return {str(record["token"]): resolve_path(root, record["occ_path"]) / "labels.npz"
                for record in load_infos(info)}
    found = {path.parent.name: path for path in sorted(root.rglob("labels.npz"))}
    if not found:
        raise DataError(f"no ground truth under {root}: neither {info.name} nor any <token>/labels.npz; set "
                        "data.root to the folder holding gts/")
    return found


def prediction_files(pred_root: Path) -> dict[str, Path]:
    """``{token: file}`` of ``<scene>/<token>/labels.npz`` and ``<token>.npz`` files under ``pred_root``."""
    files = {path.stem: path for path in sorted(pred_root.glob("*.npz"))}
    files.update({path.parent.name: path for path in sorted(pred_root.rglob("labels.npz"))})
    return files


def read_prediction(path: Path, grid: OccupancyGrid) -> np.ndarray | str:
    """The predicted labels ``(X, Y, Z)``, or why they cannot be scored."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = data.files
            name = PREDICTION_ARRAY if PREDICTION_ARRAY in names else (names[0] if len(names) == 1 else None)
            if name is None:
                return f"no '{PREDICTION_ARRAY}' array (has {', '.join(names) or 'none'})"
            labels = np.asarray(data[name])
    except (OSError, ValueError, EOFError) as err:
        return f"not a readable .npz ({type(err).__name__})"
    if labels.shape != grid.shape:
        return f"shape {labels.shape}, not {grid.shape}"
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > OCC3D_FREE:
        return f"labels outside 0..{OCC3D_FREE} (dtype {labels.dtype})"
    return labels


class Occ3DPredictionsEvaluator:
    """Per-class IoU and mIoU of a folder of predicted occupancy, camera-masked (the benchmark) and over all voxels.

    Args:
        pred_root: the predictions (layouts in the module docstring).
        root: the Occ3D-nuScenes folder (``data.root``); only ``labels.npz`` (and the info pickle) are read.
        split / info_file: which samples (the info pickle's), when the root has one.
        grid: :class:`~visionzoo.geometry.OccupancyGrid` fields of the labels (Occ3D's by default).
        on_missing: ``raise`` (one error listing every problem) or ``skip`` (warn, score the rest).
    """

    def __init__(self, pred_root: str, root: str, split: str = "val", info_file: str | None = None,
                 grid: Mapping[str, Any] | None = None, on_missing: str = "raise") -> None:
        self.on_missing = check_on_missing(on_missing)
        self.pred_root, self.root = Path(pred_root).expanduser(), Path(root).expanduser()
        for path, key in ((self.pred_root, "pred_root"), (self.root, "data.root")):
            if not path.is_dir():
                raise DataError(f"{key} {path} is not a folder")
        self.split, self.info_file = split, info_file
        self.grid = as_grid(grid, OCC3D_GRID)

    def run(self) -> list[dict[str, Any]]:
        truths, predictions = ground_truth_files(self.root, self.split, self.info_file), prediction_files(self.pred_root)
        missing, extra = sorted(set(truths) - set(predictions)), sorted(set(predictions) - set(truths))
        problems = [f"{len(missing)} samples without a prediction ({listing(missing)})"] * bool(missing)
        problems += [f"{len(extra)} predictions of unknown samples ({listing(extra)})"] * bool(extra)
        report_problems(str(self.pred_root), problems, self.on_missing)
        tokens = [token for token in truths if token in predictions]
        camera, everywhere = OccupancyMIoU(), OccupancyMIoU()
        unusable: list[str] = []
        with file_progress() as bar:
            task = bar.add_task("samples", total=len(tokens))
            for token in tokens:
                labels = read_prediction(predictions[token], self.grid)
                if isinstance(labels, str):
                    unusable.append(f"{token}: {labels}")
                else:
                    truth = read_labels(truths[token], self.grid, token)
                    pred, gt = torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(truth["semantics"])
                    camera.update(pred, gt, torch.from_numpy(truth["mask_camera"] > 0))
                    everywhere.update(pred, gt, torch.ones_like(gt, dtype=torch.bool))
                bar.advance(task)
        report_problems(str(self.pred_root), [f"{len(unusable)} predictions cannot be scored "
                                              f"({listing(unusable)})"] * bool(unusable), self.on_missing)
        scored = len(tokens) - len(unusable)
        if scored == 0:
            raise DataError(f"no prediction in {self.pred_root} could be scored")
        masked, full = camera.compute(), everywhere.compute()
        rows = [{"class": name, "IoU": float(masked[f"IoU/{name}"]), "IoU (all voxels)": float(full[f"IoU/{name}"])}
                for name in OCC3D_CLASSES[:OCC3D_FREE]]
        rows.append({"class": "mIoU", "IoU": float(masked["mIoU"]), "IoU (all voxels)": float(full["mIoU"]),
                     "samples": scored})
        return rows
