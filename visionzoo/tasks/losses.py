"""Segmentation/matting losses on logits ``(B, 1, H, W)`` and targets in [0, 1] of the same shape."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure


def bce_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy; with ``weight`` a weighted mean over pixels."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum().clamp_min(1e-6)


def iou_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft IoU loss ``1 - |P n T| / |P u T|`` per image, averaged over the batch."""
    prob = torch.sigmoid(logits.float())
    intersection = (prob * target).sum(dim=(1, 2, 3))
    union = (prob + target - prob * target).sum(dim=(1, 2, 3))
    return (1 - (intersection + 1) / (union + 1)).mean()


def ssim_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` (11x11 Gaussian window, data range 1) between the probability and the target."""
    prob = torch.sigmoid(logits.float())
    return 1 - structural_similarity_index_measure(prob, target.float(), data_range=1.0)


_LOSSES = {"bce": bce_loss, "iou": iou_loss, "ssim": ssim_loss}


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: Mapping[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the named losses (``bce``, ``iou``, ``ssim``); logits are resized to the target first."""
    if logits.shape[-2:] != target.shape[-2:]:
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    unknown = set(weights) - set(_LOSSES)
    if unknown:
        raise KeyError(f"unknown loss names {sorted(unknown)}; choose from {sorted(_LOSSES)}")
    parts = {name: _LOSSES[name](logits, target) for name, weight in weights.items() if weight}
    total = sum(weights[name] * value for name, value in parts.items())
    return total, parts
