"""Temporal alignment (DHD-M/L): a world seen from two ego poses; the previous BEV, aligned by the known ego motion,
lands on the current one (with and without the BEV flip). Parity with the official ``BEVDet4D.shift_feature``
(yanzq95/DHD 0684424) was checked outside the repository: sampling grids equal to float32 rounding (both within
3.8e-5 cells of a float64 grid; docs/dhd.md)."""

from __future__ import annotations

import math

import pytest
import torch

from visionzoo.geometry import OccupancyGrid
from visionzoo.models.dhd.temporal import align_previous_bev

GRID = OccupancyGrid((-10.0, 10.0), (-10.0, 10.0), (-1.0, 5.4), (0.4, 0.4, 0.4))  # 50 x 50 cells


def pose(yaw: float, x: float, y: float) -> torch.Tensor:
    """ego -> world: a yaw (radians) and a position (metres)."""
    m = torch.eye(4, dtype=torch.float64)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = math.cos(yaw), -math.sin(yaw), math.sin(yaw), math.cos(yaw)
    m[0, 3], m[1, 3] = x, y
    return m


def world_field(xy: torch.Tensor) -> torch.Tensor:
    """Two channels linear in world x, y (bilinear sampling reproduces them exactly)."""
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([0.3 * x - 0.2 * y + 1.0, 0.1 * x + 0.4 * y - 2.0])


def render_bev(ego_to_world: torch.Tensor, bda: torch.Tensor) -> torch.Tensor:
    """``(2, Y, X)``: the field at each BEV cell of an augmented map (cell (row j, column i) at augmented position
    ``lower + index * voxel``, the official convention), seen from ``ego_to_world``."""
    width, height, _ = GRID.shape
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                indexing="ij")
    augmented = torch.stack([GRID.lower[0] + cols * GRID.voxel[0], GRID.lower[1] + rows * GRID.voxel[1],
                             torch.zeros_like(rows)], dim=-1)
    ego = augmented @ torch.inverse(bda).T  # the augmentation undone: ego coordinates
    world = ego @ ego_to_world[:3, :3].T + ego_to_world[:3, 3]
    return world_field(world[..., :2])


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "bda-flip"])
def test_the_aligned_previous_bev_lands_on_the_current_one(flip):
    camera = pose(0.05, 1.2, 0.1)  # the front camera on the car (camera -> ego)
    current_pose, previous_pose = pose(0.30, 12.0, 4.0), pose(0.12, 10.4, 3.1)  # the car drove 1.8 m and turned
    current_camera = camera  # the key ego is the current ego
    previous_camera = torch.inverse(current_pose) @ previous_pose @ camera  # previous camera -> key ego
    bda = torch.diag(torch.tensor([-1.0 if flip else 1.0, 1.0, 1.0], dtype=torch.float64))
    previous_bev = render_bev(previous_pose, bda)[None].float()
    current_bev = render_bev(current_pose, bda)[None].float()

    aligned = align_previous_bev(previous_bev, current_camera[None].float(), previous_camera[None].float(),
                                 bda[None].float(), GRID)
    assert aligned.shape == current_bev.shape and aligned.dtype == torch.float32
    seen = aligned.abs().sum(1) > 0  # cells whose previous position was inside the previous map
    assert 0.8 < seen.float().mean() < 1.0  # the motion moved some cells out of view, most stay
    inner = seen.clone()  # away from the border, where bilinear sampling mixes in the zero padding
    inner[:, :2], inner[:, -2:], inner[..., :2], inner[..., -2:] = False, False, False, False
    inner &= torch.nn.functional.max_pool2d((~seen).float()[None], 5, 1, 2)[0] == 0
    difference = (aligned - current_bev).abs().amax(1)[inner]
    assert difference.max() < 2e-3  # float32 positions of ~50 cells
    unaligned = (previous_bev - current_bev).abs().amax(1)[inner]
    assert unaligned.mean() > 0.3  # without the alignment the maps disagree
