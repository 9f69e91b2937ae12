"""Pictures of results: labelled image grids (OpenCV) and charts (matplotlib), as RGB arrays or PNG files."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from visionzoo.constants import OCC3D_COLOURS, OCC3D_FREE


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


def _figure(size: tuple[float, float]):
    """A matplotlib figure drawn by the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _pixels(figure) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a drawn figure."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def line_plot(curves: dict[str, Sequence[float]], title: str, x_label: str, y_label: str,
              x: Sequence[float] | dict[str, Sequence[float]] | None = None,
              size: tuple[float, float] = (5.6, 3.6)) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB line plot (matplotlib) of each named curve, with grid and legend.

    ``x``: the abscissa of every curve (one sequence, or one per curve name); ``None`` plots against the index.
    Non-finite values are left out. ``size`` in inches at 100 dpi (560 x 360 px by default).
    """
    figure = _figure(size)
    axes = figure.add_subplot()
    for label, curve in curves.items():
        values = np.asarray(curve, dtype=float)
        xs = np.arange(len(values)) if x is None else np.asarray(x[label] if isinstance(x, dict) else x, float)
        keep = np.isfinite(values)
        axes.plot(xs[: len(values)][keep], values[keep], label=label, linewidth=1.2)
    axes.set(title=title, xlabel=x_label, ylabel=y_label)
    axes.grid(True, alpha=0.35)
    if len(curves) > 5:  # many curves: the legend beside the axes, not over them
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small")
    elif curves:
        axes.legend(loc="best", fontsize="small")
    return _pixels(figure)


def bar_plot(values: dict[str, float], title: str, y_label: str,
             colours: Sequence[Sequence[int]] | None = None, size: tuple[float, float] = (8.0, 3.6)) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB bar chart (matplotlib) of named values, each labelled with its value (a
    non-finite value, e.g. the IoU of a class that never occurs, is an empty bar labelled n/a); ``colours``: one
    RGB 0..255 triple per bar."""
    figure = _figure(size)
    axes = figure.add_subplot()
    names, given = list(values), [float(v) for v in values.values()]
    heights = [v if np.isfinite(v) else 0.0 for v in given]
    colour = None if colours is None else [tuple(c / 255 for c in rgb) for rgb in colours[: len(names)]]
    bars = axes.bar(range(len(names)), heights, color=colour, edgecolor="black", linewidth=0.5)
    labels = [f"{v:.3g}" if np.isfinite(v) else "n/a" for v in given]
    axes.bar_label(bars, labels=labels, fontsize="x-small", rotation=90, padding=2)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize="small")
    axes.set(title=title, ylabel=y_label)
    axes.set_ylim(0, max([*heights, 0.0]) * 1.18 or 1.0)
    axes.grid(True, axis="y", alpha=0.35)
    return _pixels(figure)


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
