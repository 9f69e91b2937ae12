"""Synthetic street worlds written in the Occ3D-nuScenes layout (the built-in default data of the DHD task).

Each scene is a voxel world on the label grid: a ground layer of road (driveable surface), sidewalks and terrain,
buildings (man-made), trees and bushes (vegetation), cars, trucks, buses, pedestrians, barriers and traffic cones.
Six cameras with a nuScenes-like rig (at ``image_scale`` of 1600x900) and a 32-beam LiDAR see it by exact ray
casting through the voxels (Amanatides-Woo traversal), which also gives ``mask_camera`` / ``mask_lidar``: the voxels
a ray passes through or stops at. With ``samples_per_scene`` > 1 a scene is a sequence: the ego drives along the
road through a static world, so multi-frame models (``dhd_m``) have previous frames with a known ego motion.
Everything is deterministic given the seed.

Written files (see :mod:`visionzoo.data.occ3d`): the two BEVDet info pickles, ``samples/CAM_*/<token>.jpg``,
``samples/LIDAR_TOP/<token>.pcd.bin``, ``gts/<scene>/<token>/labels.npz``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from visionzoo.constants import NUSCENES_CAMERAS, OCC3D_CLASSES, OCC3D_FREE
from visionzoo.data.occ3d import INFO_FILES
from visionzoo.geometry import (SYNTHETIC_GRID, OccupancyGrid, image_affine, matrix_to_quaternion, rigid,
                                yaw_camera_rotation)

log = logging.getLogger(__name__)
_MARKER = "COMPLETE.json"
LABEL = {name: index for index, name in enumerate(OCC3D_CLASSES)}


#: (position in ego (m), yaw (deg), focal (px at 1600x900)) of a nuScenes-like rig.
CAMERA_RIG = {
    "CAM_FRONT": ((1.70, 0.02, 1.51), 0.0, 1266.0),
    "CAM_FRONT_LEFT": ((1.52, 0.49, 1.51), 55.0, 1272.0),
    "CAM_FRONT_RIGHT": ((1.55, -0.49, 1.50), -55.0, 1261.0),
    "CAM_BACK_LEFT": ((1.04, 0.48, 1.59), 110.0, 1257.0),
    "CAM_BACK_RIGHT": ((1.01, -0.48, 1.56), -110.0, 1260.0),
    "CAM_BACK": ((0.03, 0.00, 1.58), 180.0, 809.0),
}
LIDAR_POSITION = (0.94, 0.0, 1.84)
LIDAR_YAW = 90.0  # as in nuScenes, the LiDAR frame is turned against the ego frame
GROUND_TOP = 0.2  # metres: objects stand on the top of the ground layer
EGO_STEP = 1.6  # metres between the samples of a sequence (about a car at 11 km/h, 2 Hz keyframes)


@dataclass(frozen=True)
class WorldSettings:
    """What a synthetic set is made of; its hash names the cache folder."""

    seed: int = 0
    train_scenes: int = 96
    val_scenes: int = 12
    image_scale: float = 0.16  # of nuScenes' 1600x900
    lidar_azimuths: int = 720
    grid: tuple = (SYNTHETIC_GRID.x_range, SYNTHETIC_GRID.y_range, SYNTHETIC_GRID.z_range, SYNTHETIC_GRID.voxel)
    version: int = 2  # 2: only rays that hit mark voxels visible
    samples_per_scene: int = 1  # > 1: a sequence, the ego driving EGO_STEP metres along the road between samples

    @property
    def occupancy_grid(self) -> OccupancyGrid:
        return OccupancyGrid(*(tuple(v) for v in self.grid))

    @property
    def ego_step(self) -> float:
        """Metres the ego drives along x between samples of a scene: :data:`EGO_STEP` rounded to whole voxels."""
        voxel = self.occupancy_grid.voxel[0]
        return max(1, round(EGO_STEP / voxel)) * voxel


class World:
    """A voxel world: ``labels`` (X, Y, Z) uint8 (17 = free) and ``colours`` (X, Y, Z, 3) RGB in [0, 1]."""

    def __init__(self, grid: OccupancyGrid) -> None:
        self.grid = grid
        self.labels = np.full(grid.shape, OCC3D_FREE, dtype=np.uint8)
        self.colours = np.zeros((*grid.shape, 3), dtype=np.float32)

    def _span(self, axis: int, lo: float, hi: float) -> slice:
        origin, size, count = self.grid.lower[axis], self.grid.voxel[axis], self.grid.shape[axis]
        first, last = int(np.ceil((lo - origin) / size - 0.5)), int(np.ceil((hi - origin) / size - 0.5))
        if last <= first:  # thinner than a voxel: the voxel holding the middle
            first = int(np.floor(((lo + hi) / 2 - origin) / size))
            last = first + 1
        return slice(max(first, 0), min(last, count))

    def box(self, x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], label: int,
            colour: np.ndarray, only_free: bool = False) -> bool:
        """Fill the voxels whose centres lie in the box (at least one per axis); ``only_free``: refuse (False)
        when any of them is taken."""
        index = (self._span(0, *x), self._span(1, *y), self._span(2, *z))
        if only_free and (self.labels[index] != OCC3D_FREE).any():
            return False
        self.labels[index] = label
        self.colours[index] = colour
        return True


def _jitter(rng: np.random.Generator, colour: tuple[float, float, float], amount: float = 0.06) -> np.ndarray:
    return np.clip(np.asarray(colour) + rng.uniform(-amount, amount, 3), 0, 1).astype(np.float32)


EGO_BOX = ((-1.5, 4.5), (-1.4, 1.4))  # metres: kept clear of objects (the ego car)
CAR_COLOURS = ((0.8, 0.1, 0.1), (0.1, 0.2, 0.6), (0.9, 0.9, 0.9), (0.1, 0.1, 0.1), (0.5, 0.5, 0.55),
               (0.2, 0.5, 0.3), (0.85, 0.75, 0.2))


def build_world(rng: np.random.Generator, grid: OccupancyGrid, path: float = 0.0) -> World:
    """A random street scene on ``grid``: a road along x through the ego position (and maybe a cross road), the
    buildings and vegetation behind its sidewalks, and the objects on it; the ego car's box is kept clear from
    ``path`` metres behind the origin on (where a sequence's ego drives)."""
    world = World(grid)
    road, walks, cross = _lay_streets(world, rng)
    for side, walk in ((-1, walks[0]), (1, walks[1])):
        _line_street_side(world, rng, walk[0] if side < 0 else walk[1], side, cross)
    _place_objects(world, rng, road, walks, ((EGO_BOX[0][0] - path, EGO_BOX[0][1]), EGO_BOX[1]))
    return world


Span = tuple[float, float]


def _lay_streets(world: World, rng: np.random.Generator) -> tuple[Span, list[Span], Span | None]:
    """Terrain, the road along x with a sidewalk on each side, and maybe a cross road: their y (x) spans."""
    (x0, x1), (y0, y1), _ = world.grid.ranges
    ground = (GROUND_TOP - world.grid.voxel[2], GROUND_TOP)
    world.box((x0, x1), (y0, y1), ground, LABEL["terrain"], _jitter(rng, (0.42, 0.5, 0.28)))
    road_y, road_w = rng.uniform(-1.5, 1.5), rng.uniform(7.0, 11.0)
    walk_w = rng.uniform(2.0, 3.5)
    road = (road_y - road_w / 2, road_y + road_w / 2)
    walks = [(road[0] - walk_w, road[0]), (road[1], road[1] + walk_w)]
    for walk in walks:
        world.box((x0, x1), walk, ground, LABEL["sidewalk"], _jitter(rng, (0.62, 0.6, 0.58)))
    world.box((x0, x1), road, ground, LABEL["driveable_surface"], _jitter(rng, (0.28, 0.28, 0.3), 0.03))
    cross = None
    if rng.random() < 0.4:
        cx, cw = rng.uniform(x0 + 8, x1 - 8), rng.uniform(6.0, 9.0)
        cross = (cx - cw / 2, cx + cw / 2)
        world.box(cross, (y0, y1), ground, LABEL["driveable_surface"], _jitter(rng, (0.28, 0.28, 0.3), 0.03))
    return road, walks, cross


def _line_street_side(world: World, rng: np.random.Generator, near: float, side: int, cross: Span | None) -> None:
    """Buildings, trees and bushes along x behind the sidewalk edge ``near`` (y, metres) on ``side`` (-1, +1),
    none on the cross road."""
    x0, x1 = world.grid.x_range
    top = world.grid.z_range[1]
    x = x0
    while x < x1:
        length = rng.uniform(5.0, 14.0)
        span = (x, min(x + length, x1))
        setback = rng.uniform(1.0, 4.0)
        kind = rng.random()
        off_cross = cross is None or span[1] < cross[0] or span[0] > cross[1]
        if off_cross and kind < 0.55:
            depth = rng.uniform(5.0, 10.0)
            ys = (near - setback - depth, near - setback) if side < 0 else (near + setback, near + setback + depth)
            colour = _jitter(rng, ((0.75, 0.68, 0.55), (0.6, 0.3, 0.25), (0.55, 0.55, 0.6))[rng.integers(3)])
            world.box(span, ys, (GROUND_TOP, min(top, GROUND_TOP + rng.uniform(3.0, 5.4))), LABEL["manmade"], colour)
        elif off_cross and kind < 0.85:
            for tx in np.arange(span[0] + 1.5, span[1] - 1.0, rng.uniform(3.5, 6.0)):
                ty = near - setback if side < 0 else near + setback
                green = _jitter(rng, (0.15, 0.42, 0.12))
                if rng.random() < 0.6:  # tree: trunk and canopy
                    world.box((tx - 0.2, tx + 0.2), (ty - 0.2, ty + 0.2), (GROUND_TOP, 2.2), LABEL["vegetation"],
                              _jitter(rng, (0.35, 0.25, 0.15)))
                    r = rng.uniform(1.2, 1.9)
                    world.box((tx - r, tx + r), (ty - r, ty + r), (2.2, min(top, 2.2 + rng.uniform(1.6, 2.8))),
                              LABEL["vegetation"], green)
                else:  # bush
                    r = rng.uniform(0.6, 1.2)
                    world.box((tx - r, tx + r), (ty - r, ty + r), (GROUND_TOP, GROUND_TOP + rng.uniform(0.8, 1.4)),
                              LABEL["vegetation"], green)
        x = span[1] + rng.uniform(0.5, 3.0)


def _place_objects(world: World, rng: np.random.Generator, road: Span, walks: list[Span],
                   ego: tuple[Span, Span] = EGO_BOX) -> None:
    """Cars, trucks, a bus and traffic cones in the road's lanes, pedestrians on the sidewalks and maybe a row of
    barriers along one road edge, each in free space clear of the ego car's box ``ego`` (x span, y span)."""
    x0, x1 = world.grid.x_range

    def _clear_of_ego(x: Span, y: Span) -> bool:
        return x[1] < ego[0][0] or x[0] > ego[0][1] or y[1] < ego[1][0] or y[0] > ego[1][1]

    def place(label: str, size: tuple[float, float, float], lanes: Span, count: int, colour_of) -> None:
        for _ in range(count):
            for _attempt in range(20):
                cx, cy = rng.uniform(x0 + 1, x1 - 1), rng.uniform(*lanes)
                along = rng.random() < 0.85 or label in ("pedestrian", "traffic_cone")
                sx, sy = (size[0], size[1]) if along else (size[1], size[0])
                xs, ys = (cx - sx / 2, cx + sx / 2), (cy - sy / 2, cy + sy / 2)
                if _clear_of_ego(xs, ys) and world.box(xs, ys, (GROUND_TOP, GROUND_TOP + size[2]), LABEL[label],
                                                       colour_of(), only_free=True):
                    break

    lane = (road[0] + 1.2, road[1] - 1.2)
    place("car", (4.4, 1.9, 1.6), lane, int(rng.integers(3, 9)), lambda: _jitter(rng, CAR_COLOURS[rng.integers(7)]))
    place("truck", (7.5, 2.5, 3.2), lane, int(rng.integers(0, 3)), lambda: _jitter(rng, (0.85, 0.85, 0.8)))
    place("bus", (11.0, 2.8, 3.2), lane, int(rng.random() < 0.3), lambda: _jitter(rng, (0.85, 0.25, 0.15)))
    place("traffic_cone", (0.4, 0.4, 0.8), lane, int(rng.integers(0, 4)), lambda: _jitter(rng, (1.0, 0.45, 0.0)))
    for walk in walks:
        place("pedestrian", (0.6, 0.6, 1.8), walk, int(rng.integers(1, 4)),
              lambda: _jitter(rng, (0.3, 0.25, 0.45), 0.2))
    if rng.random() < 0.6:  # a row of barriers along one road edge
        edge = road[0] + 0.3 if rng.random() < 0.5 else road[1] - 0.3
        start = rng.uniform(x0 + 2, x1 - 12)
        for bx in np.arange(start, start + rng.uniform(4, 10), 2.0):
            if _clear_of_ego((bx, bx + 1.8), (edge - 0.3, edge + 0.3)):
                world.box((bx, bx + 1.8), (edge - 0.3, edge + 0.3), (GROUND_TOP, GROUND_TOP + 1.0), LABEL["barrier"],
                          _jitter(rng, (0.9, 0.9, 0.85)), only_free=True)


@dataclass
class RayHits:
    """Per ray: distance to the first occupied voxel (inf: none), its label and colour, the axis of the face
    it entered through (0/1/2; -1 none); ``visited``: (X, Y, Z) bool, the voxels the rays passed or stopped in."""

    distance: np.ndarray
    label: np.ndarray
    colour: np.ndarray
    axis: np.ndarray
    visited: np.ndarray


#: The label of the one-voxel border :func:`cast_rays` puts around the world: a ray reaching it has left the grid.
_OUTSIDE = 255


def cast_rays(world: World, origins: np.ndarray, directions: np.ndarray) -> RayHits:
    """Exact voxel traversal (Amanatides & Woo) of rays ``(R, 3)`` starting inside the grid, unit directions.

    As Occ3D's visibility masks, ``visited`` holds only the voxels of rays that reach an occupied voxel: a ray that
    leaves the grid (sky, far away) observes nothing.

    The rays walk flat indices of the world padded by one :data:`_OUTSIDE` voxel on every side, so one gather per
    step tells free, occupied and outside apart; only the rays still walking are kept from step to step.
    """
    grid = world.grid
    lower, size, shape = np.array(grid.lower), np.array(grid.voxel), np.array(grid.shape)
    labels = np.pad(world.labels, 1, constant_values=_OUTSIDE).reshape(-1)
    colours = np.pad(world.colours, ((1, 1), (1, 1), (1, 1), (0, 0))).reshape(-1, 3)
    strides = np.array([(shape[1] + 2) * (shape[2] + 2), shape[2] + 2, 1])
    count = len(origins)
    position = (origins - lower) / size
    per_metre = directions / size
    cell = np.floor(position).astype(np.int64)
    step = np.sign(per_metre).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(per_metre != 0, np.abs(1.0 / per_metre), np.inf)
        boundary = np.where(per_metre != 0, (cell + (step > 0) - position) / per_metre, np.inf)
    hits = RayHits(np.full(count, np.inf), np.full(count, OCC3D_FREE, np.uint8), np.zeros((count, 3), np.float32),
                   np.full(count, -1, np.int64), np.zeros(grid.shape, dtype=bool))
    ray = np.flatnonzero(((cell >= 0) & (cell < shape)).all(axis=1)).astype(np.int32)  # the rays walking, and:
    flat, step = (cell[ray] + 1) @ strides, step[ray] * strides  # padded flat voxel, its change per axis step
    boundary, delta = boundary[ray], delta[ray]
    travelled, entered = np.zeros(len(ray)), np.full(len(ray), -1, np.int64)
    path_rays, path_cells = [], []  # (ray, padded flat voxel) of every traversed voxel
    while ray.size:
        label = labels[flat]
        inside = label != _OUTSIDE
        everywhere = inside.all()
        path_rays.append(ray if everywhere else ray[inside])
        path_cells.append(flat if everywhere else flat[inside])
        hit = inside & (label != OCC3D_FREE)
        if hit.any():
            done = ray[hit]
            hits.distance[done], hits.label[done], hits.axis[done] = travelled[hit], label[hit], entered[hit]
            hits.colour[done] = colours[flat[hit]]
        walking = inside & ~hit
        if not walking.all():
            ray, flat, step, boundary, delta = ray[walking], flat[walking], step[walking], boundary[walking], \
                delta[walking]
        rows, axis = np.arange(len(ray)), np.argmin(boundary, axis=1)
        travelled = boundary[rows, axis]
        flat = flat + step[rows, axis]
        boundary[rows, axis] += delta[rows, axis]
        entered = axis
    if path_rays:
        rays, cells = np.concatenate(path_rays), np.concatenate(path_cells)
        visited = np.zeros(labels.shape, dtype=bool)
        visited[cells[np.isfinite(hits.distance)[rays]]] = True
        hits.visited = visited.reshape(shape + 2)[1:-1, 1:-1, 1:-1].copy()
    return hits


def camera_rays(cam2ego: np.ndarray, intrinsics: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Origins and unit directions ``(H * W, 3)`` in the ego frame through every pixel centre."""
    height, width = size
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], axis=1)
    directions = pixels @ np.linalg.inv(intrinsics).T @ cam2ego[:3, :3].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.broadcast_to(cam2ego[:3, 3], directions.shape).copy(), directions


def shade(hits: RayHits, directions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB in [0, 1] per ray: face-lit voxel colours with distance haze; sky or far ground where nothing is hit."""
    light = np.array([0.8, 0.9, 0.65])[np.clip(hits.axis, 0, 2)]  # x faces, y faces, tops
    colour = hits.colour * light[:, None] * rng.uniform(0.97, 1.03, (len(light), 1))
    haze = 1 - np.exp(-np.nan_to_num(hits.distance, posinf=0.0) / 70.0)
    sky = np.array([0.55, 0.7, 0.9]) + (0.25 * np.clip(directions[:, 2:3], 0, 1))
    far_ground = np.array([0.42, 0.47, 0.32])
    background = np.where(directions[:, 2:3] < 0, far_ground, sky)
    out = np.where(np.isfinite(hits.distance)[:, None], colour * (1 - haze[:, None]) + sky * haze[:, None], background)
    return np.clip(out + rng.normal(0, 0.015, out.shape), 0, 1)


def camera_rig(image_scale: float) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
    """Per camera: ``cam2ego`` (4, 4), intrinsics (3, 3) and image size (H, W) at ``image_scale`` of 1600x900."""
    size = (int(round(900 * image_scale)), int(round(1600 * image_scale)))
    rig = {}
    for name in NUSCENES_CAMERAS:
        position, yaw, focal = CAMERA_RIG[name]
        f = focal * image_scale
        intrinsics = np.array([[f, 0, size[1] / 2], [0, f, size[0] / 2], [0, 0, 1.0]])
        rig[name] = (rigid(yaw_camera_rotation(yaw), position), intrinsics, size)
    return rig


def rig_example(input_size: tuple[int, int], frames: int = 1, batch: int = 1,
                cameras: tuple[str, ...] = NUSCENES_CAMERAS) -> tuple[torch.Tensor, ...]:
    """Example occupancy-model inputs on the nuScenes-like rig (benchmarks, export tracing): ``images`` (random),
    ``intrinsics``, ``cam2ego``, ``post`` (the 1600 x 900 images resized to the input's width, bottom rows kept),
    ``bda`` (identity). ``frames`` > 1 gives ``images`` ``(B, T, N, 3, H, W)`` and ``cam2ego`` ``(B, T, N, 4, 4)``,
    the car :data:`EGO_STEP` metres further back in each older frame."""
    rig = camera_rig(1.0)
    intrinsics = torch.tensor(np.stack([rig[c][1] for c in cameras]), dtype=torch.float32)
    cam2ego = torch.tensor(np.stack([rig[c][0] for c in cameras]), dtype=torch.float32)
    scale = input_size[1] / 1600
    post = torch.tensor(image_affine(scale, (0, 900 * scale - input_size[0]), False, 0.0, input_size),
                        dtype=torch.float32).expand(len(cameras), 3, 3)
    images = torch.randn(batch, len(cameras), 3, *input_size)
    if frames > 1:
        back = torch.eye(4).repeat(frames, 1, 1)
        back[:, 0, 3] = -EGO_STEP * torch.arange(frames, dtype=torch.float32)
        cam2ego = back[:, None] @ cam2ego
        images = torch.randn(batch, frames, len(cameras), 3, *input_size)
    expand = lambda t: t.expand(batch, *t.shape).clone()  # noqa: E731
    return images, expand(intrinsics), expand(cam2ego), expand(post), expand(torch.eye(3))


def lidar_sweep(world: World, azimuths: int, ego_x: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(P, 5)`` float32 points in the LiDAR frame (x, y, z, intensity, ring) and the visited mask, the ego at
    ``ego_x`` metres along the world's x."""
    elevations = np.radians(np.linspace(-30.0, 10.0, 32))
    yaw = np.radians(np.arange(azimuths) * 360.0 / azimuths)
    ring, az = np.meshgrid(np.arange(32), yaw, indexing="ij")
    el = elevations[ring]
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1).reshape(-1, 3)
    origins = np.broadcast_to(np.array(LIDAR_POSITION), directions.shape)
    hits = cast_rays(world, origins + np.array([ego_x, 0.0, 0.0]), directions)
    found = np.isfinite(hits.distance)
    ego_points = origins[found] + directions[found] * hits.distance[found, None]
    lidar2ego = rigid(_lidar_rotation(), LIDAR_POSITION)
    local = (ego_points - lidar2ego[:3, 3]) @ lidar2ego[:3, :3]
    intensity = hits.label[found].astype(np.float32) * 4.0
    points = np.concatenate([local, intensity[:, None], ring.reshape(-1)[found, None]], axis=1).astype(np.float32)
    return points, hits.visited


def _lidar_rotation() -> np.ndarray:
    a = np.radians(LIDAR_YAW)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def _token(rng: np.random.Generator) -> str:
    return "".join(f"{b:02x}" for b in rng.integers(0, 256, 16))


def write_scene(root: Path, settings: WorldSettings, split: str, index: int) -> list[dict]:
    """Build one scene and render and write its samples; returns their info records, in time order.

    A scene of ``samples_per_scene`` samples is a static world the ego drives through along the road (+x) by
    ``settings.ego_step`` per sample, so its last sample's ego sits at the world origin and the others behind it;
    each sample's labels are the grid-sized window of the world around its own ego, and its ego pose carries the
    motion (the camera rig and the LiDAR are fixed on the car).
    """
    rng = np.random.default_rng((settings.seed, 0 if split == "train" else 1, index))
    grid = settings.occupancy_grid
    travel = settings.ego_step * (settings.samples_per_scene - 1)
    world = build_world(rng, OccupancyGrid((grid.x_range[0] - travel, grid.x_range[1]), grid.y_range, grid.z_range,
                                           grid.voxel), path=travel)
    scene = f"synthetic-{split}-{index:04d}"
    tokens = [_token(rng) for _ in range(settings.samples_per_scene)]
    yaw = rng.uniform(-np.pi, np.pi)
    rotation = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1.0]])
    world_translation = np.array([*rng.uniform(-500, 500, 2), 0.0])
    infos = []
    for k, token in enumerate(tokens):
        ego_x = -settings.ego_step * (settings.samples_per_scene - 1 - k)  # this sample's ego in the world
        first = round((ego_x + travel) / grid.voxel[0])  # its label window in the world's cells
        window = slice(first, first + grid.shape[0])
        timestamp = 1_533_000_000_000_000 + index * 20_000_000 + k * 500_000
        infos.append(_write_sample(root, settings, world, rng, scene, token, timestamp, ego_x, window,
                                   rotation, world_translation + rotation @ np.array([ego_x, 0.0, 0.0])))
    return infos


def _write_sample(root: Path, settings: WorldSettings, world: World, rng: np.random.Generator, scene: str,
                  token: str, timestamp: int, ego_x: float, window: slice, rotation: np.ndarray,
                  translation: np.ndarray) -> dict:
    """Render and write one sample of a scene, the ego at ``ego_x`` along the world's x; its labels are the
    world's x cells ``window``. Returns its info record."""
    ego_rotation = [float(v) for v in matrix_to_quaternion(rotation)]
    ego_translation = [float(v) for v in translation]
    visible = np.zeros(world.grid.shape, dtype=bool)
    cams = {}
    for name, (cam2ego, intrinsics, size) in camera_rig(settings.image_scale).items():
        origins, directions = camera_rays(cam2ego, intrinsics, size)
        hits = cast_rays(world, origins + np.array([ego_x, 0.0, 0.0]), directions)
        visible |= hits.visited
        image = (shade(hits, directions, rng).reshape(*size, 3) * 255 + 0.5).astype(np.uint8)
        relative = f"samples/{name}/{token}_{name}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / relative), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        sensor2lidar = np.linalg.inv(rigid(_lidar_rotation(), LIDAR_POSITION)) @ cam2ego
        cams[name] = {
            "data_path": f"./data/nuscenes/{relative}", "type": name, "sample_data_token": _token(rng),
            "sensor2ego_translation": [float(v) for v in cam2ego[:3, 3]],
            "sensor2ego_rotation": [float(v) for v in matrix_to_quaternion(cam2ego[:3, :3])],
            "ego2global_translation": ego_translation, "ego2global_rotation": ego_rotation,
            "timestamp": timestamp, "sensor2lidar_rotation": sensor2lidar[:3, :3],
            "sensor2lidar_translation": sensor2lidar[:3, 3], "cam_intrinsic": intrinsics,
        }
    points, lidar_seen = lidar_sweep(world, settings.lidar_azimuths, ego_x)
    lidar_relative = f"samples/LIDAR_TOP/{token}_LIDAR_TOP.pcd.bin"
    (root / lidar_relative).parent.mkdir(parents=True, exist_ok=True)
    points.tofile(root / lidar_relative)
    gts = root / "gts" / scene / token
    gts.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(gts / "labels.npz", semantics=world.labels[window],
                        mask_lidar=lidar_seen[window].astype(np.uint8), mask_camera=visible[window].astype(np.uint8))
    return {
        "token": token, "lidar_path": f"./data/nuscenes/{lidar_relative}", "timestamp": timestamp,
        "lidar2ego_translation": list(LIDAR_POSITION),
        "lidar2ego_rotation": [float(v) for v in matrix_to_quaternion(_lidar_rotation())],
        "ego2global_translation": ego_translation, "ego2global_rotation": ego_rotation,
        "scene_name": scene, "scene_token": scene, "occ_path": f"./data/nuscenes/gts/{scene}/{token}",
        "cams": cams,
    }


def generate_synthetic_occ3d(cache_dir: str | os.PathLike, **settings) -> Path:
    """Write (or reuse) synthetic worlds under ``cache_dir``; returns the root holding the info files.

    ``settings`` are :class:`WorldSettings` fields. The folder name carries their hash and a marker file is
    written last, so an interrupted generation is redone and different settings never share a folder.
    """
    if isinstance(settings.get("grid"), Mapping):
        g = settings["grid"]
        settings["grid"] = (tuple(g["x_range"]), tuple(g["y_range"]), tuple(g["z_range"]), tuple(g["voxel"]))
    world = WorldSettings(**settings)
    record = json.loads(json.dumps(asdict(world)))
    digest = hashlib.sha1(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]
    target = Path(cache_dir).expanduser() / f"synthetic_occ3d_{digest}"
    if (target / _MARKER).exists():
        return target
    log.info("generating %d synthetic Occ3D scenes in %s", world.train_scenes + world.val_scenes, target)
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for split, count in (("train", world.train_scenes), ("val", world.val_scenes)):
        infos = [info for i in range(count) for info in write_scene(staging, world, split, i)]
        with open(staging / INFO_FILES[split], "wb") as handle:
            pickle.dump({"infos": infos, "metadata": {"version": "synthetic-v1"}}, handle)
    (staging / _MARKER).write_text(json.dumps(record, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    try:
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target
