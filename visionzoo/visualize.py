"""Pictures of results: labelled image grids written as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

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


def image_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], cell: int = 192) -> np.ndarray:
    """Grid of ``(H, W, 3)`` uint8 RGB tiles, each fitted into a ``cell`` square, with a title row on top."""
    header = 24
    grid = np.full((header + cell * len(rows), cell * len(titles), 3), 255, np.uint8)
    for col, title in enumerate(titles):
        cv2.putText(grid, title, (col * cell + 6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            scale = cell / max(tile.shape[:2])
            size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
            fitted = cv2.resize(tile, size, interpolation=cv2.INTER_AREA)
            top, left = header + r * cell + (cell - size[1]) // 2, c * cell + (cell - size[0]) // 2
            grid[top : top + size[1], left : left + size[0]] = fitted
    return grid


def save_grid(path: str | Path, rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], cell: int = 192) -> Path:
    path = Path(path)
    write_image_atomic(path, image_grid(rows, titles, cell))
    return path
