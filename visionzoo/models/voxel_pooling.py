"""Lift-splat in plain PyTorch: camera frustum points -> voxel indices -> summed features (no custom ops).

:func:`frustum` places ``D`` depth hypotheses at every feature-map pixel; :func:`lift_points` moves them into the
(augmented) ego frame; :func:`voxel_indices` turns ego points into flat voxel indices of a grid (points outside
dropped); :func:`pool_voxels` sums ``depth probability x feature`` of the points that fall in each voxel with one
``index_add_``. Indices depend only on the camera geometry, so :class:`VoxelIndexCache` keeps them while the
geometry stays the same (evaluation, fixed rigs) and training with augmentation recomputes them per batch.
"""

from __future__ import annotations

import torch

from visionzoo.geometry import OccupancyGrid, lift_to_ego


def frustum(input_size: tuple[int, int], stride: int, depth_bins: tuple[float, float, float],
            device: torch.device | None = None) -> torch.Tensor:
    """``(D, h, w, 3)`` of (u, v, depth): feature-pixel centres in network-input pixels, depths ``lo, lo + step,
    ... < hi`` metres."""
    height, width = input_size
    h, w = -(-height // stride), -(-width // stride)
    depths = torch.arange(*depth_bins, device=device, dtype=torch.float32)
    v = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride - 0.5
    u = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride - 0.5
    d, vv, uu = torch.meshgrid(depths, v, u, indexing="ij")
    return torch.stack([uu, vv, d], dim=-1)


def lift_points(points: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor) -> torch.Tensor:
    """Ego points ``(B, N, D, h, w, 3)`` of a frustum ``(D, h, w, 3)`` for cameras ``intrinsics (B, N, 3, 3)``,
    ``cam2ego (B, N, 4, 4)``, ``post (B, N, 3, 3)`` and BEV augmentation ``bda (B, 3, 3)``."""
    batch, cams = intrinsics.shape[:2]
    flat = points.reshape(1, 1, -1, 3)
    ego = lift_to_ego(flat[..., :2].expand(batch, cams, -1, -1), flat[..., 2].expand(batch, cams, -1), intrinsics,
                      cam2ego, post, bda[:, None])
    return ego.reshape(batch, cams, *points.shape[:3], 3)


def voxel_indices(points: torch.Tensor, grid: OccupancyGrid, collapse_z: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices into ``(B, X, Y, Z)`` (or ``(B, X, Y)`` with ``collapse_z``) of ego points ``(B, ..., 3)``.

    Returns ``(kept, index)``: positions (into the flattened points) of the points inside the grid, and their
    voxel's flat index including the batch offset.
    """
    batch = points.shape[0]
    lower = points.new_tensor(grid.lower)
    size = points.new_tensor(grid.voxel)
    shape = points.new_tensor(grid.shape, dtype=torch.long)
    cell = torch.floor((points.reshape(batch, -1, 3) - lower) / size).long()
    inside = ((cell >= 0) & (cell < shape)).all(dim=-1)
    b = torch.arange(batch, device=points.device)[:, None].expand_as(inside)
    x, y, z = cell.unbind(-1)
    X, Y, Z = grid.shape
    index = (b * X + x) * Y + y if collapse_z else ((b * X + x) * Y + y) * Z + z
    kept = inside.reshape(-1).nonzero().squeeze(1)
    return kept, index.reshape(-1)[kept]


def pool_voxels(depth: torch.Tensor, features: torch.Tensor, kept: torch.Tensor, index: torch.Tensor,
                cells: int) -> torch.Tensor:
    """Sum of ``depth x feature`` per voxel: ``(cells, C)``.

    ``depth`` is ``(B, N, D, h, w)`` (a distribution over depth bins), ``features`` ``(B, N, C, h, w)``;
    ``kept``/``index`` come from :func:`voxel_indices` over the matching ``(B, N, D, h, w)`` points.
    """
    batch, cams, bins, h, w = depth.shape
    channels = features.shape[2]
    lifted = depth.unsqueeze(-1) * features.permute(0, 1, 3, 4, 2).unsqueeze(2)  # (B, N, D, h, w, C)
    values = lifted.reshape(-1, channels).index_select(0, kept)
    out = values.new_zeros(cells, channels)
    return out.index_add_(0, index, values)


class VoxelIndexCache:
    """Keeps the last :func:`voxel_indices` result with the geometry it was computed for; reused when the same
    matrices come again (``torch.equal``), recomputed otherwise."""

    def __init__(self) -> None:
        self.key: torch.Tensor | None = None
        self.value: tuple[torch.Tensor, ...] | None = None

    def get(self, key: torch.Tensor, compute) -> tuple[torch.Tensor, ...]:
        if self.key is None or self.key.shape != key.shape or self.key.device != key.device \
                or not torch.equal(self.key, key):
            self.key, self.value = key.detach().clone(), compute()
        return self.value
