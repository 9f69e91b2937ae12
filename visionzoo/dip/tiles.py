"""Large images in overlapping tiles: each tile is denoised on its own and the tiles are blended without seams.

:func:`tile_grid` places ``size x size`` tiles (smaller only where the image is) every ``size - overlap`` pixels,
the last tile of each row and column flush with the image's edge, so every pixel is covered and every tile has
the same size (one generator architecture, batched fitting). :class:`TileBlender` accumulates each tile's output
weighted by :func:`blend_window` (a ramp over the ``overlap`` pixels at each inner edge) and divides by the summed
weights: where tiles agree the result is exactly their value (a constant image stays constant), and where they
differ the weights change gradually across the overlap, so no seam is drawn. Memory: the accumulators are
``(H, W, C)`` + ``(H, W)`` float32, 192 MB for a 12-megapixel RGB photo; only one batch of tiles is fitted at a time.

:class:`TileCache` keeps finished tiles on disk (``<folder>/<top>_<left>.npy``) so that an interrupted photo
resumes at the first unfinished tile. The cache records what made its tiles (a JSON *fingerprint*: the fit
settings, the input's pixels...) and is discarded, not mixed in, when a later run's fingerprint differs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionzoo.files import atomic_write

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """A tile's top-left corner and size in pixels."""

    top: int
    left: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.top + self.height)

    @property
    def columns(self) -> slice:
        return slice(self.left, self.left + self.width)

    @property
    def key(self) -> str:
        return f"{self.top}_{self.left}"


def _starts(length: int, size: int, step: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size, step))
    return starts + [length - size]


def tile_grid(height: int, width: int, size: int, overlap: int) -> list[Tile]:
    """Row-major tiles covering an ``height x width`` image; neighbours overlap by at least ``overlap`` pixels."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"tiles need size >= 1 and 0 <= overlap < size, got size {size}, overlap {overlap}")
    step = size - overlap
    tile_h, tile_w = min(size, height), min(size, width)
    return [Tile(top, left, tile_h, tile_w) for top in _starts(height, size, step) for left in _starts(width, size, step)]


def blend_window(height: int, width: int, overlap: int) -> np.ndarray:
    """``(height, width)`` float32 weights: 1 inside, falling linearly towards each edge over ``overlap`` pixels
    (never to 0, so a pixel only one tile covers keeps that tile's value)."""
    def ramp(length: int) -> np.ndarray:
        position = np.arange(length, dtype=np.float32) + 0.5
        return np.minimum(1.0, np.minimum(position, length - position) / max(overlap, 1)).astype(np.float32)

    return np.outer(ramp(height), ramp(width))


class TileBlender:
    """Weighted sum of tile outputs over an ``(height, width, channels)`` image; :meth:`result` normalises it."""

    def __init__(self, height: int, width: int, channels: int, overlap: int) -> None:
        self.overlap = overlap
        self.total = np.zeros((height, width, channels), np.float32)
        self.weight = np.zeros((height, width), np.float32)

    def add(self, tile: Tile, pixels: np.ndarray) -> None:
        """Add one tile's ``(tile.height, tile.width, channels)`` output."""
        window = blend_window(tile.height, tile.width, self.overlap)
        self.total[tile.rows, tile.columns] += pixels * window[..., None]
        self.weight[tile.rows, tile.columns] += window

    def result(self) -> np.ndarray:
        if (self.weight <= 0).any():
            raise ValueError("some pixels are covered by no tile")
        return self.total / self.weight[..., None]


def _jsonable(value: Any) -> Any:
    """Mappings (a config's ``DictConfig``) as dicts, anything else JSON cannot write as its ``str``."""
    return dict(value) if isinstance(value, Mapping) else str(value)


class TileCache:
    """Finished tiles of one image on disk, ``<folder>/<top>_<left>.npy`` (float32), written atomically.

    ``fingerprint``: a JSON-serialisable ``{name: value}`` of what made the tiles, written to
    ``<folder>/fingerprint.json`` with the first tile. :meth:`open` discards a cache left by a run with another
    fingerprint (or none), so tiles of different settings or inputs are never blended together.
    """

    FINGERPRINT = "fingerprint.json"

    def __init__(self, folder: str | Path, fingerprint: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        # Through JSON once, so that it compares equal to what a later run reads back (tuples become lists...).
        self.fingerprint = json.loads(json.dumps(fingerprint or {}, sort_keys=True, default=_jsonable))

    def open(self) -> None:
        """Keep the cache if it was made with this fingerprint; otherwise log which entries differ and clear it."""
        if not self.folder.is_dir():
            return
        path = self.folder / self.FINGERPRINT
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = None
        if stored == self.fingerprint:
            return
        changed = ("no fingerprint" if not isinstance(stored, dict) else
                   ", ".join(sorted(key for key in stored.keys() | self.fingerprint.keys()
                                    if stored.get(key) != self.fingerprint.get(key))))
        log.warning("%s: its tiles were made with other settings or input (%s); starting the image over",
                    self.folder, changed)
        self.clear()

    def load(self, tile: Tile) -> np.ndarray | None:
        path = self.folder / f"{tile.key}.npy"
        if not path.exists():
            return None
        pixels = np.load(path, allow_pickle=False)
        return pixels if pixels.shape[:2] == (tile.height, tile.width) else None

    def save(self, tile: Tile, pixels: np.ndarray) -> None:
        if not (self.folder / self.FINGERPRINT).exists():
            atomic_write(self.folder / self.FINGERPRINT,
                         lambda tmp: tmp.write_text(json.dumps(self.fingerprint, sort_keys=True, indent=1)))
        atomic_write(self.folder / f"{tile.key}.npy", lambda tmp: np.save(tmp, pixels.astype(np.float32)),
                     suffix=".npy")

    def clear(self) -> None:
        """Remove the cache (the image is written, or the tiles are stale)."""
        if self.folder.is_dir():
            for path in [*self.folder.glob("*.npy"), *self.folder.glob(f"*{self.FINGERPRINT}*")]:
                path.unlink()
            self.folder.rmdir()
