"""Occ3D semantic occupancy mIoU, computed as the benchmark computes it.

For every sample, prediction and ground truth are taken at the camera-visible voxels (``mask_camera``), ground
truth outside [0, 18) is dropped, and an 18 x 18 confusion matrix ``hist[gt, pred]`` is accumulated over the whole
set. Then ``IoU_c = hist[c, c] / (row_c + col_c - hist[c, c])`` and mIoU is the mean over the 17 non-free
classes (0..16) x 100, classes that never occur (0 / 0) left out. The free class (17) stays in the matrix, so
confusing free and occupied space costs both, but its own IoU is not averaged. The matrix is a summed metric
state, so the metric syncs across processes.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from visionzoo.constants import OCC3D_CLASSES


class OccupancyMIoU(Metric):
    """Occ3D mIoU over camera-visible voxels; the last class is free space (17 for Occ3D).

    ``update(pred, gt, mask_camera)``: integer ``(B, X, Y, Z)`` predicted and true labels and a boolean (or 0/1)
    camera mask of the same shape. ``compute()`` returns ``{"mIoU": ..., "IoU/<class>": ...}`` in percent
    (the 17 non-free classes, NaN for classes absent from both prediction and ground truth).
    """

    full_state_update = False

    def __init__(self, num_classes: int = len(OCC3D_CLASSES), class_names: tuple[str, ...] = OCC3D_CLASSES) -> None:
        super().__init__()
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes, self.class_names = num_classes, class_names
        self.add_state("confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, gt: torch.Tensor, mask_camera: torch.Tensor) -> None:
        if not pred.shape == gt.shape == mask_camera.shape:
            raise ValueError(f"pred {tuple(pred.shape)}, gt {tuple(gt.shape)} and mask_camera "
                             f"{tuple(mask_camera.shape)} must have the same shape")
        visible = mask_camera.bool()
        pred, gt = pred[visible].long(), gt[visible].long()
        valid = (gt >= 0) & (gt < self.num_classes)
        pred, gt = pred[valid], gt[valid]
        if pred.numel() and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f"predicted labels must lie in [0, {self.num_classes})")
        counts = torch.bincount(gt * self.num_classes + pred, minlength=self.num_classes**2)
        self.confusion += counts.view(self.num_classes, self.num_classes)

    def per_class_iou(self) -> torch.Tensor:
        """IoU of every class (free included) in percent, NaN where the class never occurs."""
        hist = self.confusion.double()
        diagonal = hist.diagonal()
        union = hist.sum(dim=1) + hist.sum(dim=0) - diagonal
        return torch.where(union > 0, diagonal / union.clamp_min(1), torch.nan) * 100

    def compute(self) -> dict[str, torch.Tensor]:
        iou = self.per_class_iou()
        occupied = iou[:-1]  # free space is not averaged
        result = {"mIoU": occupied.nanmean()}
        result.update({f"IoU/{name}": iou[c] for c, name in enumerate(self.class_names[: len(occupied)])})
        return result
