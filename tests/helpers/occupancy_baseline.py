"""The trivial occupancy baseline: every voxel position predicts the label it most often has in training.

Counted over camera-visible training voxels; positions never visible in training predict free. It knows the
scene layout statistics (roads ahead, buildings at the sides, free air above) but sees no image, so a camera
model must beat it to show that it reads the cameras.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from visionzoo.constants import OCC3D_CLASSES, OCC3D_FREE
from visionzoo.metrics.occupancy import OccupancyMIoU


def position_prior(volumes: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``(X, Y, Z)`` most frequent label per voxel over ``(semantics, mask_camera)`` training pairs."""
    counts = None
    for semantics, mask in volumes:
        if counts is None:
            counts = np.zeros((*semantics.shape, len(OCC3D_CLASSES)), dtype=np.int64)
        x, y, z = np.nonzero(mask > 0)
        np.add.at(counts, (x, y, z, semantics[x, y, z].astype(np.int64)), 1)
    if counts is None:
        raise ValueError("no training volumes")
    prior = counts.argmax(axis=-1)
    prior[counts.sum(axis=-1) == 0] = OCC3D_FREE
    return prior.astype(np.uint8)


def prior_miou(prior: np.ndarray, volumes: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Occ3D mIoU (and per-class IoU) of predicting ``prior`` for every held-out ``(semantics, mask_camera)``."""
    metric = OccupancyMIoU()
    pred = torch.from_numpy(prior.astype(np.int64))[None]
    for semantics, mask in volumes:
        metric.update(pred, torch.from_numpy(semantics.astype(np.int64))[None], torch.from_numpy(mask > 0)[None])
    return {k: float(v) for k, v in metric.compute().items()}
