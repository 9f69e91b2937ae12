"""Occ3D mIoU: hand-made confusions, the camera mask, the free class, parity with the benchmark's algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from visionzoo.metrics import OCC3D_CLASSES, OccupancyMIoU


def _volume(values: list[int]) -> torch.Tensor:
    return torch.tensor(values).view(1, len(values), 1, 1)


def test_hand_computed_ious():
    # voxels:      v0 v1 v2 v3 v4 v5
    gt = _volume([4, 4, 4, 11, 17, 17])    # car x3, driveable x1, free x2
    pred = _volume([4, 4, 11, 11, 17, 4])  # one car read as road, one free read as car
    metric = OccupancyMIoU()
    metric.update(pred, gt, torch.ones_like(gt, dtype=torch.bool))
    out = metric.compute()
    # car: TP 2, gt-row 3, pred-col 3 -> 2 / 4; driveable: TP 1, row 1, col 2 -> 1 / 2; free: 1 / 2 (not averaged)
    assert out["IoU/car"].item() == pytest.approx(50.0)
    assert out["IoU/driveable_surface"].item() == pytest.approx(50.0)
    assert math.isnan(out["IoU/barrier"].item())
    assert out["mIoU"].item() == pytest.approx(50.0)  # mean of car and driveable only
    assert "IoU/free" not in out and metric.per_class_iou()[17].item() == pytest.approx(50.0)


def test_camera_mask_and_ignored_labels():
    gt = _volume([4, 4, 255, 11])
    pred = _volume([4, 11, 4, 11])
    mask = _volume([1, 0, 1, 1])  # the wrong car voxel is not visible; 255 is not a class
    metric = OccupancyMIoU()
    metric.update(pred, gt, mask)
    out = metric.compute()
    assert out["IoU/car"].item() == pytest.approx(100.0) and out["mIoU"].item() == pytest.approx(100.0)
    assert int(metric.confusion.sum()) == 2


def test_free_confusion_costs_the_occupied_class():
    gt = _volume([16, 16, 17, 17])
    perfect, fooled = OccupancyMIoU(), OccupancyMIoU()
    perfect.update(gt, gt, torch.ones_like(gt))
    fooled.update(_volume([16, 16, 16, 17]), gt, torch.ones_like(gt))  # free read as vegetation
    assert perfect.compute()["mIoU"].item() == pytest.approx(100.0)
    assert fooled.compute()["IoU/vegetation"].item() == pytest.approx(100 * 2 / 3)


def _benchmark_miou(preds, gts, masks) -> tuple[float, np.ndarray]:
    """The Occ3D evaluation code's algorithm, written out in numpy."""
    hist = np.zeros((18, 18))
    for pred, gt, mask in zip(preds, gts, masks):
        p, g = pred[mask], gt[mask]
        keep = (g >= 0) & (g < 18)
        hist += np.bincount(18 * g[keep] + p[keep], minlength=324).reshape(18, 18)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return float(np.nanmean(iou[:17]) * 100), iou * 100


def test_parity_with_the_benchmark_algorithm_and_batching():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 18, (8, 8, 4)) for _ in range(3)]
    gts = [np.where(rng.random((8, 8, 4)) < 0.6, p, rng.integers(0, 18, (8, 8, 4))) for p in preds]
    masks = [rng.random((8, 8, 4)) < 0.7 for _ in range(3)]
    expected, per_class = _benchmark_miou(preds, gts, masks)
    one_by_one, batched = OccupancyMIoU(), OccupancyMIoU()
    for p, g, m in zip(preds, gts, masks):
        one_by_one.update(torch.from_numpy(p)[None], torch.from_numpy(g)[None], torch.from_numpy(m)[None])
    batched.update(*(torch.from_numpy(np.stack(a)) for a in (preds, gts, masks)))
    for metric in (one_by_one, batched):
        out = metric.compute()
        assert out["mIoU"].item() == pytest.approx(expected)
        assert [out[f"IoU/{n}"].item() for n in OCC3D_CLASSES[:17]] == pytest.approx(per_class[:17].tolist())


def test_bad_inputs():
    metric = OccupancyMIoU()
    with pytest.raises(ValueError, match="same shape"):
        metric.update(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 1), torch.ones(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"predicted labels must lie in \[0, 18\)"):
        metric.update(torch.full((1, 1, 1, 1), 18), torch.zeros(1, 1, 1, 1, dtype=torch.long), torch.ones(1, 1, 1, 1))
