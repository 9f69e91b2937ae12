"""A synthetic DIS5K: objects with thin structures, holes and mesh parts on textured backgrounds.

Writes the real DIS5K layout (``DIS5K/<split>/im/*.jpg`` + ``gt/*.png``), deterministic by seed, so every DIS5K
code path (reader, training, evaluation at the GT's own resolution) runs on it. Each object is a smooth blob,
sometimes with holes, plus wires (1-3 px polylines) and sometimes a mesh (a grid of thin bars); foreground and
background get different colours and textures, and image sizes vary so that predictions must be resized back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_COUNTS = {"DIS-TR": 64, "DIS-VD": 16, "DIS-TE1": 8, "DIS-TE2": 8, "DIS-TE3": 8, "DIS-TE4": 8}
_MARKER = ".complete.json"


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency random field in [0, 1], ``(height, width, channels)``."""
    coarse = rng.random((cells, cells, channels)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels).clip(0, 1)


def _texture(rng: np.random.Generator, height: int, width: int, base: np.ndarray, amplitude: float) -> np.ndarray:
    """A coloured texture around ``base`` (RGB in [0, 1]): colour drift plus stripes or blotchy noise."""
    drift = (_smooth_field(rng, height, width, int(rng.integers(2, 6)), 3) - 0.5) * 0.3
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 30)
        pattern = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    else:
        pattern = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), rng.uniform(1, 4))
        pattern = (pattern / (np.abs(pattern).max() + 1e-6))[..., None]
    return np.clip(base[None, None] + drift + amplitude * pattern, 0, 1)


def _blob(rng: np.random.Generator, height: int, width: int, scale: int) -> np.ndarray:
    """Smooth star-shaped polygon mask (uint8 0/1) drawn at ``scale`` x resolution."""
    center = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    radius = rng.uniform(0.15, 0.3) * min(height, width)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    harmonics = sum(rng.uniform(0, 0.25 / k) * np.cos(k * angles + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    radii = radius * (1 + harmonics)
    points = center + np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
    mask = np.zeros((height * scale, width * scale), np.uint8)
    cv2.fillPoly(mask, [np.round(points * scale).astype(np.int32)], 1)
    for _ in range(int(rng.integers(0, 4))):  # holes
        hole_center = center + rng.uniform(-0.4, 0.4, 2) * radius
        axes = rng.uniform(0.08, 0.25, 2) * radius
        cv2.ellipse(mask, tuple(np.round(hole_center * scale).astype(int)), tuple(np.round(axes * scale).astype(int)),
                    float(rng.uniform(0, 180)), 0, 360, 0, -1)
    return mask


def _wires(rng: np.random.Generator, mask: np.ndarray, scale: int) -> None:
    """Draw 2-6 wandering thin polylines (1-3 px at output resolution) that start on the object."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return
    height, width = mask.shape
    for _ in range(int(rng.integers(2, 7))):
        start = int(rng.integers(0, len(ys)))
        point = np.array([xs[start], ys[start]], dtype=np.float64)
        heading = rng.uniform(0, 2 * np.pi)
        points = [point.copy()]
        for _ in range(int(rng.integers(4, 12))):
            heading += rng.normal(0, 0.35)
            point = point + rng.uniform(6, 18) * scale * np.array([np.cos(heading), np.sin(heading)])
            point = np.clip(point, 0, [width - 1, height - 1])
            points.append(point.copy())
        thickness = int(rng.integers(1, 4)) * scale
        cv2.polylines(mask, [np.round(np.array(points)).astype(np.int32)], False, 1, thickness)


def _mesh(rng: np.random.Generator, mask: np.ndarray, scale: int) -> None:
    """A rectangular grid of thin bars (a fence/net) overlapping the object."""
    height, width = mask.shape
    box_h, box_w = rng.uniform(0.2, 0.4) * height, rng.uniform(0.2, 0.4) * width
    top, left = rng.uniform(0.05, 0.95 - box_h / height) * height, rng.uniform(0.05, 0.95 - box_w / width) * width
    spacing = rng.uniform(7, 14) * scale
    thickness = int(rng.integers(1, 3)) * scale
    for x in np.arange(left, left + box_w, spacing):
        cv2.line(mask, (int(x), int(top)), (int(x), int(top + box_h)), 1, thickness)
    for y in np.arange(top, top + box_h, spacing):
        cv2.line(mask, (int(left), int(y)), (int(left + box_w), int(y)), 1, thickness)
    cv2.rectangle(mask, (int(left), int(top)), (int(left + box_w), int(top + box_h)), 1, thickness)


def synthetic_dis_sample(seed: int, split_index: int, index: int, size_range: tuple[int, int] = (192, 320)) -> tuple[np.ndarray, np.ndarray]:
    """One (image ``(H, W, 3)`` uint8 RGB, mask ``(H, W)`` uint8 0/255) pair, fixed by its three integers."""
    rng = np.random.default_rng([seed, split_index, index])
    height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, 2))
    scale = 4  # draw at 4x and area-downsample: soft, anti-aliased edges in the image
    mask_hr = _blob(rng, height, width, scale)
    _wires(rng, mask_hr, scale)
    if rng.random() < 0.5:
        _mesh(rng, mask_hr, scale)
    coverage = cv2.resize(mask_hr.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)[..., None]
    background_colour = rng.uniform(0.15, 0.85, 3)
    foreground_colour = rng.uniform(0, 1, 3)
    while np.abs(foreground_colour - background_colour).sum() < 0.6:
        foreground_colour = rng.uniform(0, 1, 3)
    background = _texture(rng, height, width, background_colour, rng.uniform(0.05, 0.2))
    foreground = _texture(rng, height, width, foreground_colour, rng.uniform(0.02, 0.12))
    image = foreground * coverage + background * (1 - coverage)
    image = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    mask = np.where(coverage[..., 0] >= 0.5, 255, 0).astype(np.uint8)
    return (image * 255 + 0.5).astype(np.uint8), mask


def generate_synthetic_dis(
    root: str | os.PathLike,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    size_range: tuple[int, int] = (192, 320),
) -> Path:
    """Write (or reuse) a synthetic DIS5K under ``root``; returns the folder that holds ``DIS5K/``.

    The folder name carries a hash of the settings, and a marker file is written last, so an interrupted
    generation is redone and different settings never share a folder.
    """
    counts = dict(counts or DEFAULT_COUNTS)
    settings = {"counts": counts, "seed": seed, "size_range": list(size_range), "version": 1}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    target = Path(root).expanduser() / f"synthetic_dis_{digest}"
    if (target / _MARKER).exists():
        return target
    log.info("generating synthetic DIS5K (%d images) in %s", sum(counts.values()), target)
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    for split_index, (split, count) in enumerate(sorted(counts.items())):
        (staging / "DIS5K" / split / "im").mkdir(parents=True, exist_ok=True)
        (staging / "DIS5K" / split / "gt").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = synthetic_dis_sample(seed, split_index, index, tuple(size_range))
            stem = f"{split}_{index:04d}"
            cv2.imwrite(str(staging / "DIS5K" / split / "im" / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            cv2.imwrite(str(staging / "DIS5K" / split / "gt" / f"{stem}.png"), mask)
    (staging / _MARKER).write_text(json.dumps(settings, indent=2) + "\n")
    if target.exists():  # an older interrupted run left it without its marker
        shutil.rmtree(target)
    try:
        os.replace(staging, target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target
