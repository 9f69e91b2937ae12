"""Losses of the DHD occupancy task (all over camera-visible voxels / LiDAR-covered pixels).

* :func:`weighted_cross_entropy`: per-voxel cross-entropy with class weights ``1 / ln(count)`` (normalised to
  mean 1 over the classes that occur), as BEVDet-Occ / FlashOcc / DHD weight their CE.
* :func:`sem_scal_loss` / :func:`geo_scal_loss`: MonoScene's scene-class affinity losses: per class (semantic) or
  for occupied-vs-free (geometric), the soft precision, recall and specificity of the prediction over the scene,
  each pushed towards 1 by ``-log``.
* :func:`bin_bce_loss`: BEVDepth's depth loss, used for height and depth: BCE of the softmax over bins against the
  one-hot bin of the LiDAR label, summed over bins, averaged over pixels that have a label.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def class_weights_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """``(C,)`` weights ``1 / ln(count + e)`` normalised to mean 1 over classes with a non-zero count (others 0)."""
    counts = counts.double()
    weights = 1.0 / torch.log(counts + math.e)
    present = counts > 0
    weights = torch.where(present, weights, torch.zeros_like(weights))
    return (weights / weights[present].mean()).float()


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                           weights: torch.Tensor | None) -> torch.Tensor:
    """Weighted mean CE of ``logits (..., C)`` against ``target (...)`` where ``mask (...)`` is set."""
    return F.cross_entropy(logits[mask].float(), target[mask], weight=weights)


def _affinity_terms(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-log`` of precision, recall and specificity of soft predictions ``prob (V, K)`` for binary targets
    ``target (V, K)``, per column ``(K,)`` (terms with an empty denominator count 0)."""
    eps = 1e-6
    hit = (prob * target).sum(0)
    precision = hit / prob.sum(0).clamp(min=eps)
    recall = hit / target.sum(0).clamp(min=eps)
    negatives = (1 - target).sum(0)
    specificity = ((1 - prob) * (1 - target)).sum(0) / negatives.clamp(min=eps)
    terms = -torch.log(precision.clamp(min=eps)) * (prob.sum(0) > 0) - torch.log(recall.clamp(min=eps)) \
        - torch.log(specificity.clamp(min=eps)) * (negatives > 0)
    return terms


def sem_scal_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Semantic scene-class affinity loss, averaged over the classes present in ``target[mask]``."""
    prob = logits[mask].float().softmax(dim=-1)
    onehot = F.one_hot(target[mask], prob.shape[-1]).float()
    present = onehot.sum(0) > 0
    if not present.any():
        return prob.sum() * 0
    return _affinity_terms(prob, onehot)[present].mean()


def geo_scal_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, free_index: int) -> torch.Tensor:
    """Geometric scene-class affinity loss: occupied (any class but ``free_index``) against free."""
    prob = logits[mask].float().softmax(dim=-1)
    occupied = 1 - prob[:, free_index]
    truth = (target[mask] != free_index).float()
    return _affinity_terms(occupied[:, None], truth[:, None]).sum()


def bin_bce_loss(logits: torch.Tensor, bins: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BCE of ``softmax(logits (B, N, K, h, w))`` against one-hot ``bins (B, N, h, w)`` where ``valid``."""
    prob = logits.float().softmax(dim=2).movedim(2, -1)[valid]
    if prob.numel() == 0:
        return logits.sum() * 0
    onehot = F.one_hot(bins[valid], prob.shape[-1]).float()
    return F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), onehot, reduction="sum") / prob.shape[0]


def depth_bins_of(depth: torch.Tensor, depth_bins: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin index and validity of metric depths ``(...)`` (NaN = no label) for bins ``(min, max, step)``."""
    lo, hi, step = depth_bins
    count = len(torch.arange(lo, hi, step))
    index = torch.floor((torch.nan_to_num(depth, nan=-1.0) - lo) / step).long()
    valid = (index >= 0) & (index < count) & ~torch.isnan(depth)
    return index.clamp(0, count - 1), valid
