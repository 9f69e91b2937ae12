"""Temporal fusion's alignment (DHD-M/L, BEVDet4D): the previous frame's BEV features resampled into the current
key-ego frame, as the official ``BEVDet4D.gen_grid`` / ``shift_feature`` do.

BEV maps are ``(B, C, Y, X)``: row ``j`` and column ``i`` stand for ego position
``(x, y) = (lower_x + i * voxel_x, lower_y + j * voxel_y)`` (metres; the official convention puts a cell at its
lower corner, not its centre, so a rotation turns the map about a point half a cell from the ego origin). The ego
motion comes from one camera's sensor-to-key-ego transform in both frames (a camera is rigid on the car, so
``current @ previous^-1`` is the key ego seen from the previous ego), and the BEV augmentation (``bda``: flips and
rotation, ``(B, 3, 3)``) is applied to both, as the official code does when no separate ``bda_adj`` is given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionzoo.geometry import OccupancyGrid


def key_ego_to_previous_ego(current_sensor_to_key_ego: torch.Tensor, previous_sensor_to_key_ego: torch.Tensor,
                            bda: torch.Tensor) -> torch.Tensor:
    """``(B, 4, 4)``: key-ego coordinates (augmented by ``bda``) -> previous-ego coordinates (augmented alike).

    ``current_sensor_to_key_ego`` / ``previous_sensor_to_key_ego``: ``(B, 4, 4)``, the same camera in the current
    and the previous frame, both to the current (key) ego.
    """
    augment = torch.eye(4, dtype=current_sensor_to_key_ego.dtype, device=current_sensor_to_key_ego.device)
    augment = augment.repeat(bda.shape[0], 1, 1)
    augment[:, :3, :3] = bda.to(augment.dtype)
    current = augment @ current_sensor_to_key_ego
    previous = augment @ previous_sensor_to_key_ego
    return current @ torch.inverse(previous)


def previous_bev_sampling_grid(height: int, width: int, key_to_previous: torch.Tensor,
                               grid: OccupancyGrid) -> torch.Tensor:
    """``(B, height, width, 2)`` ``grid_sample`` positions (``align_corners=True``, in [-1, 1] inside the map) in
    the previous BEV of every current BEV cell, for the planar part (x, y, translation) of ``key_to_previous``."""
    dtype, device = key_to_previous.dtype, key_to_previous.device
    planar = key_to_previous[:, [0, 1, 3]][:, :, [0, 1, 3]]  # (B, 3, 3): z dropped
    cell_to_metres = torch.tensor([[grid.voxel[0], 0.0, grid.lower[0]], [0.0, grid.voxel[1], grid.lower[1]],
                                   [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    transform = torch.inverse(cell_to_metres) @ planar @ cell_to_metres  # current cell -> previous cell
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    cells = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (H, W, 3): (column, row, 1)
    moved = torch.einsum("bij,hwj->bhwi", transform, cells)[..., :2]
    scale = torch.tensor([width - 1.0, height - 1.0], dtype=dtype, device=device)
    return moved / scale * 2.0 - 1.0


def align_previous_bev(previous: torch.Tensor, current_sensor_to_key_ego: torch.Tensor,
                       previous_sensor_to_key_ego: torch.Tensor, bda: torch.Tensor,
                       grid: OccupancyGrid) -> torch.Tensor:
    """The previous frame's BEV ``(B, C, Y, X)`` moved into the current key-ego frame (bilinear, zeros outside),
    in float32 as the official ``shift_feature`` (``force_fp32``) computes it."""
    key_to_previous = key_ego_to_previous_ego(current_sensor_to_key_ego.float(), previous_sensor_to_key_ego.float(),
                                              bda.float())
    sampling = previous_bev_sampling_grid(previous.shape[-2], previous.shape[-1], key_to_previous, grid)
    return F.grid_sample(previous.float(), sampling, align_corners=True)
