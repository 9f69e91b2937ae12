"""Segmentation/matting losses on logits ``(B, 1, H, W)`` and targets in [0, 1] of the same shape."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


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


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian ``(size,)``."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' blur of ``(N, C, H, W)`` by a 1-D window, as weighted sums of shifted slices."""
    size = len(window)
    height, width = x.shape[-2] - size + 1, x.shape[-1] - size + 1
    rows = sum(window[k] * x[..., k : k + height, :] for k in range(size))
    return sum(window[k] * rows[..., k : k + width] for k in range(size))


def ssim(prob: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (data range 1, k1 = 0.01, k2 = 0.03, Gaussian window, reflection padding) of ``(B, C, H, W)``.

    The same value as ``torchmetrics``' ``structural_similarity_index_measure`` (tested), computed with a
    separable window as shifted-slice sums: on 8x1x256x256 on the CPU its backward takes a small fraction of the
    library's 11x11 grouped convolution (about 1.7 s), which dominated the BEN training step.
    """
    size = min(size, 2 * min(prob.shape[-2:]) - 1)  # reflection padding must stay inside small maps
    window = gaussian_window(size, sigma, prob.device).to(prob.dtype)
    pad = (size - 1) // 2
    stacked = torch.cat([prob, target, prob * prob, target * target, prob * target], dim=1)
    mu_p, mu_t, pp, tt, pt = _blur(F.pad(stacked, (pad, pad, pad, pad), mode="reflect"), window).chunk(5, dim=1)
    var_p, var_t = (pp - mu_p**2).clamp_min(0), (tt - mu_t**2).clamp_min(0)
    cov = pt - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return index.mean()


def ssim_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` between the probability and the target."""
    return 1 - ssim(torch.sigmoid(logits.float()), target.float())


_LOSSES = {"bce": bce_loss, "iou": iou_loss, "ssim": ssim_loss}


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: Mapping[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the named losses (``bce``, ``iou``, ``ssim``).

    Logits smaller than the target (side outputs) are scored at their own resolution against the area-averaged
    target, which keeps deep supervision cheap.
    """
    if logits.shape[-2:] != target.shape[-2:]:
        target = F.adaptive_avg_pool2d(target, logits.shape[-2:])
    unknown = set(weights) - set(_LOSSES)
    if unknown:
        raise KeyError(f"unknown loss names {sorted(unknown)}; choose from {sorted(_LOSSES)}")
    parts = {name: _LOSSES[name](logits, target) for name, weight in weights.items() if weight}
    total = sum(weights[name] * value for name, value in parts.items())
    return total, parts
