"""3D geometry shared by the occupancy data and models: the voxel grid, rigid transforms, camera projection.

Frames (nuScenes conventions): the ego frame has x forward, y left, z up, origin on the ground under the rear
axle; a camera frame has x right, y down, z forward. Units are metres and pixels.

Per camera a sample carries
* ``intrinsics`` ``K`` (3, 3) in source-image pixels,
* ``cam2ego`` (4, 4): camera frame -> the sample's ego frame,
* ``post`` (3, 3): the image-plane affine of the augmentation (resize, crop, flip, rotation),
  ``[u', v', 1] = post @ [u, v, 1]``, so network-input pixels are ``post`` applied to source pixels,
and the sample carries ``bda`` (3, 3), the BEV augmentation applied to ego points (``p' = bda @ p``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class OccupancyGrid:
    """An axis-aligned voxel grid in the ego frame (Occ3D-nuScenes': :data:`OCC3D_GRID`).

    Ranges are ``(min, max)`` in metres; voxel ``(i, j, k)`` spans ``x_min + i * voxel[0]`` to the next
    boundary (likewise y, z). Arrays over the grid are indexed ``(x, y, z)``.
    """

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    z_range: tuple[float, float]
    voxel: tuple[float, float, float]

    def __post_init__(self) -> None:
        for lo_hi, size, axis in zip(self.ranges, self.voxel, "xyz"):
            cells = (lo_hi[1] - lo_hi[0]) / size
            if size <= 0 or cells < 1 or abs(cells - round(cells)) > 1e-6:
                raise ValueError(f"grid {axis}: range {lo_hi} is not a whole number of {size} m voxels")

    @property
    def ranges(self) -> tuple[tuple[float, float], ...]:
        return (tuple(self.x_range), tuple(self.y_range), tuple(self.z_range))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(X, Y, Z)`` voxel counts."""
        return tuple(int(round((hi - lo) / s)) for (lo, hi), s in zip(self.ranges, self.voxel))

    @property
    def lower(self) -> tuple[float, float, float]:
        return (self.x_range[0], self.y_range[0], self.z_range[0])

    def z_slice(self, z_min: float, z_max: float) -> "OccupancyGrid":
        """The sub-grid of the z layers in ``[z_min, z_max]`` (boundaries must fall on layer boundaries)."""
        return OccupancyGrid(self.x_range, self.y_range, (z_min, z_max), self.voxel)

    def layer_index(self, z: float) -> int:
        """Index of the z layer boundary at height ``z`` (metres)."""
        index = (z - self.z_range[0]) / self.voxel[2]
        if abs(index - round(index)) > 1e-6:
            raise ValueError(f"height {z} m is not on a {self.voxel[2]} m layer boundary of {self.z_range}")
        return int(round(index))

    def voxel_centres(self) -> np.ndarray:
        """``(X, Y, Z, 3)`` ego-frame centres of every voxel, metres."""
        axes = [lo + (np.arange(n) + 0.5) * s for (lo, _), n, s in zip(self.ranges, self.shape, self.voxel)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


#: Occ3D-nuScenes' label grid: x, y in [-40, 40] m, z in [-1, 5.4] m, 0.4 m voxels (200 x 200 x 16).
OCC3D_GRID = OccupancyGrid((-40.0, 40.0), (-40.0, 40.0), (-1.0, 5.4), (0.4, 0.4, 0.4))
#: The synthetic worlds' grid: +-20 m at 0.8 m, with Occ3D's 16 z layers of 0.4 m (50 x 50 x 16).
SYNTHETIC_GRID = OccupancyGrid((-20.0, 20.0), (-20.0, 20.0), OCC3D_GRID.z_range, (0.8, 0.8, 0.4))


def as_grid(value: OccupancyGrid | Mapping[str, Any] | None,
            default: OccupancyGrid | None = None) -> OccupancyGrid | None:
    """A grid from a grid, a config mapping of its fields (lists allowed), or ``None`` (then ``default``)."""
    if value is None:
        return default
    if isinstance(value, OccupancyGrid):
        return value
    return OccupancyGrid(**{k: tuple(v) for k, v in dict(value).items()})


def quaternion_to_matrix(q: "np.ndarray | list[float]") -> np.ndarray:
    """(3, 3) rotation of a unit quaternion ``(w, x, y, z)`` (nuScenes order); normalised first."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a (3, 3) rotation (the inverse of
    :func:`quaternion_to_matrix`)."""
    m = np.asarray(rotation, dtype=np.float64)
    candidates = np.array([
        [1 + m[0, 0] + m[1, 1] + m[2, 2], m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]],
        [m[2, 1] - m[1, 2], 1 + m[0, 0] - m[1, 1] - m[2, 2], m[0, 1] + m[1, 0], m[0, 2] + m[2, 0]],
        [m[0, 2] - m[2, 0], m[0, 1] + m[1, 0], 1 - m[0, 0] + m[1, 1] - m[2, 2], m[1, 2] + m[2, 1]],
        [m[1, 0] - m[0, 1], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], 1 - m[0, 0] - m[1, 1] + m[2, 2]],
    ])
    row = candidates[int(np.argmax(np.diag(candidates)))]  # the numerically largest component's row
    q = row / np.linalg.norm(row)
    return q if q[0] >= 0 else -q


def rigid(rotation: np.ndarray, translation: "np.ndarray | list[float]") -> np.ndarray:
    """(4, 4) homogeneous transform from a (3, 3) rotation (or a ``(w, x, y, z)`` quaternion) and a translation."""
    rotation = np.asarray(rotation, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(rotation) if rotation.shape == (4,) else rotation
    out[:3, 3] = np.asarray(translation, dtype=np.float64)
    return out


def yaw_camera_rotation(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """(3, 3) camera -> ego rotation of a level camera looking along ego yaw ``yaw_deg`` (left positive), tilted
    down by ``pitch_deg``."""
    base = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # cam x right, y down, z forward
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    rz = np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
    ry = np.array([[math.cos(pitch), 0, math.sin(pitch)], [0, 1, 0], [-math.sin(pitch), 0, math.cos(pitch)]])
    return rz @ ry @ base


def image_affine(scale: float, crop: tuple[float, float], flip: bool, rotate_deg: float,
                 out_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) ``post`` of an augmentation: resize by ``scale``, take the window whose top-left corner is ``crop``
    = (x, y) in the resized image, mirror left-right when ``flip``, rotate by ``rotate_deg`` (counter-clockwise
    on screen) about the centre of the ``out_size`` = (height, width) window."""
    height, width = out_size
    post = np.diag([scale, scale, 1.0])
    post = np.array([[1, 0, -crop[0]], [0, 1, -crop[1]], [0, 0, 1.0]]) @ post
    if flip:
        post = np.array([[-1, 0, width], [0, 1, 0], [0, 0, 1.0]]) @ post
    if rotate_deg:
        a = math.radians(rotate_deg)
        cx, cy = width / 2, height / 2
        turn = np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
        post = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]]) @ turn @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]]) @ post
    return post


def bev_flip_matrix(flip_x: bool, flip_y: bool) -> np.ndarray:
    """(3, 3) ``bda`` mirroring ego x and/or y (the grid must be symmetric about the ego origin)."""
    return np.diag([-1.0 if flip_x else 1.0, -1.0 if flip_y else 1.0, 1.0])


def project_to_image(points_ego: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor,
                     post: torch.Tensor, bda: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Network-input pixel coordinates ``(..., P, 2)`` and camera depths ``(..., P)`` of ego points ``(..., P, 3)``.

    Leading dimensions broadcast (e.g. points ``(P, 3)`` against per-camera matrices ``(N, 3, 3)``). ``bda``,
    when given, is undone first: the points are in the augmented ego frame.
    """
    if bda is not None:
        points_ego = points_ego @ torch.linalg.inv(bda).transpose(-1, -2)
    ego2cam = torch.linalg.inv(cam2ego)
    cam = points_ego @ ego2cam[..., :3, :3].transpose(-1, -2) + ego2cam[..., None, :3, 3]
    depth = cam[..., 2]
    uvw = cam @ intrinsics.transpose(-1, -2)
    uv1 = torch.cat([uvw[..., :2] / uvw[..., 2:3].clamp(min=1e-6), torch.ones_like(depth)[..., None]], dim=-1)
    return (uv1 @ post.transpose(-1, -2))[..., :2], depth


def lift_to_ego(uv: torch.Tensor, depth: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor,
                post: torch.Tensor, bda: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse of :func:`project_to_image`: ego points ``(..., P, 3)`` of network-input pixels ``(..., P, 2)``
    at camera depths ``(..., P)`` (metres)."""
    uv1 = torch.cat([uv, torch.ones_like(depth)[..., None]], dim=-1)
    source = uv1 @ torch.linalg.inv(post).transpose(-1, -2)
    rays = (source / source[..., 2:3]) @ torch.linalg.inv(intrinsics).transpose(-1, -2)
    cam = rays * depth[..., None]
    ego = cam @ cam2ego[..., :3, :3].transpose(-1, -2) + cam2ego[..., None, :3, 3]
    if bda is not None:
        ego = ego @ bda.transpose(-1, -2)
    return ego
