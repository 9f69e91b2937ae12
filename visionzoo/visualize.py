"""Pictures of results: labelled image grids written as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from visionzoo.constants import OCC3D_COLOURS, OCC3D_FREE
from visionzoo.data.images import write_image_atomic


def checkerboard(height: int, width: int, cell: int = 8) -> np.ndarray:
    """``(H, W, 3)`` uint8 light-grey checkerboard, the usual backdrop for transparent pixels."""
    yy, xx = np.mgrid[0:height, 0:width]
    light = ((yy // cell + xx // cell) % 2).astype(np.uint8)
    return np.repeat((200 + 40 * light)[..., None], 3, axis=2).astype(np.uint8)


def over_checkerboard(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite ``(H, W, 3)`` uint8 RGB with ``(H, W)`` uint8 alpha over a checkerboard."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    board = checkerboard(*alpha.shape)
    return (rgb.astype(np.float32) * a + board.astype(np.float32) * (1 - a) + 0.5).astype(np.uint8)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def image_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], cell: int = 192,
               captions: Sequence[Sequence[str]] | None = None) -> np.ndarray:
    """Grid of ``(H, W, 3)`` uint8 RGB tiles, each fitted into a ``cell`` square, with a title row on top and
    optional per-tile ``captions`` (same nesting as ``rows``) written under each tile."""
    header = 24
    footer = 20 if captions else 0
    cell_h = cell + footer
    grid = np.full((header + cell_h * len(rows), cell * len(titles), 3), 255, np.uint8)
    for col, title in enumerate(titles):
        cv2.putText(grid, title, (col * cell + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            scale = cell / max(tile.shape[:2])
            size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
            fitted = cv2.resize(tile, size, interpolation=cv2.INTER_AREA)
            top, left = header + r * cell_h + (cell - size[1]) // 2, c * cell + (cell - size[0]) // 2
            grid[top : top + size[1], left : left + size[0]] = fitted
            if captions and captions[r][c]:
                cv2.putText(grid, captions[r][c], (c * cell + 6, header + r * cell_h + cell + 15),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return grid


def save_grid(path: str | Path, rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], cell: int = 192,
              captions: Sequence[Sequence[str]] | None = None) -> Path:
    path = Path(path)
    write_image_atomic(path, image_grid(rows, titles, cell, captions))
    return path


_PLOT_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14))


def line_plot(curves: dict[str, Sequence[float]], title: str, x_label: str, y_label: str,
              size: tuple[int, int] = (560, 360), x_max: float | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB line plot of each named curve against its index, with axes, ticks and a legend.

    The x ticks count samples, or run from 0 to ``x_max`` when given (curves sampled on a uniform grid);
    non-finite values are left out.
    """
    width, height = size
    left, right, top, bottom = 58, 12, 28, 40
    canvas = np.full((height, width, 3), 255, np.uint8)
    values = [v for curve in curves.values() for v in curve if np.isfinite(v)]
    if not values:
        return canvas
    low, high = min(values), max(values)
    high = high if high > low else low + 1.0
    length = max(len(curve) for curve in curves.values())
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_xy(i: float, v: float) -> tuple[int, int]:
        return (left + round(i / max(1, length - 1) * plot_w), top + round((high - v) / (high - low) * plot_h))

    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), black, 1)
    for k in range(5):
        v = low + (high - low) * k / 4
        _, y = to_xy(0, v)
        cv2.line(canvas, (left - 4, y), (left, y), black, 1)
        cv2.putText(canvas, f"{v:.4g}", (2, y + 4), font, 0.38, black, 1, cv2.LINE_AA)
        i = (length - 1) * k / 4
        x, _ = to_xy(i, low)
        tick = f"{i:.0f}" if x_max is None else f"{x_max * k / 4:.3g}"
        cv2.line(canvas, (x, top + plot_h), (x, top + plot_h + 4), black, 1)
        cv2.putText(canvas, tick, (x - 10, top + plot_h + 16), font, 0.38, black, 1, cv2.LINE_AA)
    cv2.putText(canvas, title, (left, 18), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(canvas, x_label, (left + plot_w // 2 - 30, height - 6), font, 0.42, black, 1, cv2.LINE_AA)
    cv2.putText(canvas, y_label, (left + 4, top + 14), font, 0.42, (90, 90, 90), 1, cv2.LINE_AA)
    for n, (label, curve) in enumerate(curves.items()):
        colour = _PLOT_COLOURS[n % len(_PLOT_COLOURS)]
        points = np.array([to_xy(i, v) for i, v in enumerate(curve) if np.isfinite(v)], np.int32)
        if len(points) > 1:
            cv2.polylines(canvas, [points], False, colour, 1, cv2.LINE_AA)
        cv2.putText(canvas, label, (left + plot_w - 170, top + 16 + 16 * n), font, 0.42, colour, 1, cv2.LINE_AA)
    return canvas


def occupancy_bev(semantics: np.ndarray, colours: Sequence[Sequence[int]], free: int,
                  mask: np.ndarray | None = None, scale: int = 4) -> np.ndarray:
    """Top-down ``(X * scale, Y * scale, 3)`` uint8 picture of an ``(X, Y, Z)`` label volume: each column shows
    its highest non-free label (white where free); with ``mask``, only masked voxels count and columns without
    any are grey. Ego forward (+x) points up, left (+y) points left."""
    labels = np.where(mask > 0, semantics, free) if mask is not None else semantics
    occupied = labels != free
    top = labels.shape[2] - 1 - np.argmax(occupied[..., ::-1], axis=2)
    bev = np.where(occupied.any(axis=2), np.take_along_axis(labels, top[..., None], axis=2)[..., 0], free)
    picture = np.asarray(colours, dtype=np.uint8)[bev]
    if mask is not None:
        picture[~(mask > 0).any(axis=2)] = (200, 200, 200)
    picture = picture[::-1, ::-1]
    return np.ascontiguousarray(np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1))


def occupancy_voxels(semantics: np.ndarray, colours: Sequence[Sequence[int]], free: int,
                     mask: np.ndarray | None = None, cell: float = 5.0, z_scale: float = 1.0) -> np.ndarray:
    """Isometric ``(H, W, 3)`` uint8 rendering of the non-free voxels of an ``(X, Y, Z)`` label volume (only the
    masked ones with ``mask``), seen from behind-right above, painter's order. ``z_scale`` = voxel height /
    voxel width."""
    labels = np.where(mask > 0, semantics, free) if mask is not None else semantics
    X, Y, Z = labels.shape
    cos, sin = 0.866 * cell, 0.5 * cell
    width = int((X + Y) * cos) + 4
    height = int((X + Y) * sin + Z * z_scale * cell) + 4

    def screen(x: float, y: float, z: float) -> tuple[float, float]:
        return (x - y + Y) * cos + 2, height - 2 - ((x + y) * sin + z * z_scale * cell)

    canvas = np.full((height, width, 3), 255, np.uint8)
    xs, ys, zs = np.nonzero(labels != free)
    order = np.argsort(-(xs + ys) + zs * 1e-3 + 0.0, kind="stable")
    faces = (((0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)), ((0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1)),
             ((0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)))
    shades = (1.0, 0.78, 0.62)
    palette = np.asarray(colours, dtype=np.float32)
    for i in order:
        x, y, z = int(xs[i]), int(ys[i]), int(zs[i])
        base = palette[labels[x, y, z]]
        for face, shade in zip(faces, shades):
            polygon = np.array([screen(x + dx, y + dy, z + dz) for dx, dy, dz in face], np.int32)
            cv2.fillConvexPoly(canvas, polygon, tuple(int(c) for c in base * shade), cv2.LINE_AA)
    return canvas


def class_legend(names: Sequence[str], colours: Sequence[Sequence[int]], width: int = 192) -> np.ndarray:
    """``(H, width, 3)`` uint8 legend: a colour swatch and the name per class."""
    row = 16
    legend = np.full((row * len(names) + 8, width, 3), 255, np.uint8)
    for i, (name, colour) in enumerate(zip(names, colours)):
        top = 4 + i * row
        cv2.rectangle(legend, (4, top + 2), (16, top + 13), tuple(int(c) for c in colour), -1)
        cv2.rectangle(legend, (4, top + 2), (16, top + 13), (0, 0, 0), 1)
        cv2.putText(legend, name, (22, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return legend


def side_by_side(*images: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 images placed left to right, top-aligned, on white."""
    height = max(image.shape[0] for image in images)
    canvas = np.full((height, sum(image.shape[1] for image in images), 3), 255, np.uint8)
    left = 0
    for image in images:
        canvas[: image.shape[0], left : left + image.shape[1]] = image
        left += image.shape[1]
    return canvas


OCCUPANCY_PICTURE_TITLES = ("front camera", "BEV truth", "BEV predicted", "voxels truth", "voxels predicted")


def occupancy_picture_row(front: np.ndarray, truth: np.ndarray, predicted: np.ndarray, mask: np.ndarray,
                          z_scale: float) -> list[np.ndarray]:
    """The tiles of one Occ3D sample (titles :data:`OCCUPANCY_PICTURE_TITLES`): camera image, BEV and voxel views
    of the truth and of the prediction ``(X, Y, Z)`` class ids, both over the camera-visible ``mask``."""
    bev = [occupancy_bev(v, OCC3D_COLOURS, OCC3D_FREE, mask) for v in (truth, predicted)]
    voxels = [occupancy_voxels(v, OCC3D_COLOURS, OCC3D_FREE, mask, z_scale=z_scale) for v in (truth, predicted)]
    return [front, *bev, *voxels]
