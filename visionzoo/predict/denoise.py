"""Denoise users' own noisy images with DIP: no clean reference, the noise level and architecture are estimated.

For each input ``photo.jpg`` it writes ``<output>/photo_dip.png`` (PNG, so nothing is lost again): the same size,
upright, in the file's bit depth (8 or 16) and colour mode (gray stays gray; an alpha channel is kept unchanged).
Each image is fitted from scratch (up to 800 iterations below 128 px and 1400 from 128 px up by default), so
large photos take long on a CPU: a 256x256 RGB image with the estimated architecture takes about 3 minutes on
2 cores.

Images larger than ``tile.size`` are denoised in overlapping tiles (:mod:`visionzoo.dip.tiles`): each tile gets
its own estimated generator, ``tile.batch`` same-architecture tiles are fitted together, and the tiles are blended
without seams; memory stays that of one batch of tiles plus the image's accumulators. Finished tiles are kept in
``<output>/.<stem>_dip.tiles/`` until the image is written, so an interrupted photo resumes at its first
unfinished tile; tiles left by a run with other settings or another input of the same name are discarded
(:meth:`DenoisePredictor.fingerprint`). The progress bar counts tiles x iterations, with the time left.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from visionzoo.data.images import LoadedImage, read_image, write_image
from visionzoo.dip.recipe import DIPFitSettings, fit_images, from_hwc, to_hwc
from visionzoo.dip.tiles import Tile, TileBlender, TileCache, tile_grid
from visionzoo.errors import ConfigError, DataError
from visionzoo.files import ensure_writable_folder
from visionzoo.pixels import from_unit, to_unit
from visionzoo.predict.common import BatchReport, find_inputs, resolve_device
from visionzoo.progress import file_progress

log = logging.getLogger(__name__)


def image_to_unit(image: LoadedImage) -> np.ndarray:
    """``(H, W, C)`` float32 in [0, 1] at the file's depth; C = 1 for grayscale files, else 3."""
    return to_unit(image.pixels[..., :1] if image.grayscale else image.pixels)


def unit_to_file_pixels(denoised: np.ndarray, image: LoadedImage) -> np.ndarray:
    """``(H, W, C)`` float in [0, 1] -> the file's dtype and channels (gray ``(H, W)``, RGB, or RGBA with its alpha)."""
    pixels = from_unit(denoised, image.pixels.dtype)
    if image.grayscale:
        return pixels[..., 0]
    if image.alpha is not None:
        return np.dstack([pixels, image.alpha.astype(image.pixels.dtype)])
    return pixels


class DenoisePredictor:
    """DIP denoiser over a file, folder or glob.

    Args:
        net: generator builder (``partial(create_model, name=...)``).
        input: file, folder or glob. output: folder for ``<stem>_dip.png`` files.
        overwrite: redo images whose output exists. architecture: ``"auto"`` or ``"fixed"`` (see
            :func:`~visionzoo.dip.recipe.build_generator`). fit: :class:`DIPFitSettings` fields.
        tile: ``{size, overlap, batch}``: images with a side over ``size`` are denoised in ``size x size`` tiles
            overlapping by ``overlap`` pixels, ``batch`` tiles fitted at a time; ``None``: always whole images.
        device: ``auto``, ``cpu``, ``cuda``...
    """

    def __init__(
        self, net: Callable[..., nn.Module], input: str, output: str, overwrite: bool = False,
        architecture: str = "auto", fit: dict[str, Any] | None = None, tile: dict[str, int] | None = None,
        device: str = "auto",
    ) -> None:
        self.net, self.input, self.output = net, input, Path(output)
        self.overwrite, self.architecture = overwrite, architecture
        self.settings = DIPFitSettings(**(fit or {}))
        self.tile = dict(tile) if tile else None
        if self.tile is not None:
            unknown = set(self.tile) - {"size", "overlap", "batch"}
            if unknown or not 0 <= int(self.tile.get("overlap", 0)) < int(self.tile.get("size", 0)):
                raise ConfigError(f"predictor.tile must be {{size, overlap, batch}} with 0 <= overlap < size, not "
                                f"{self.tile}")
        self.device = resolve_device(device)

    def output_path(self, image: Path) -> Path:
        return self.output / f"{image.stem}_dip.png"

    def tile_cache(self, image: Path, fingerprint: dict[str, Any] | None = None) -> TileCache:
        return TileCache(self.output / f".{image.stem}_dip.tiles", fingerprint)

    def fingerprint(self, image: LoadedImage) -> dict[str, Any]:
        """What decides an image's tiles: its pixels (SHA-256), the generator, architecture rule, tile size and
        overlap and every fit setting, with the precision resolved for this run's device (``tile.batch`` only
        groups the same fits, so a resume may change it)."""
        fit = asdict(self.settings) | {"precision": self.settings.precision_on(self.device)}
        return {"pixels_sha256": hashlib.sha256(np.ascontiguousarray(image.pixels).data).hexdigest(),
                "generator": dict(getattr(self.net, "keywords", {})), "architecture": self.architecture,
                "tile": {key: (self.tile or {}).get(key) for key in ("size", "overlap")},
                **{f"fit.{name}": value for name, value in fit.items()}}

    def tiles(self, height: int, width: int) -> list[Tile]:
        """The tiles of an image: one whole-image tile unless tiling is on and a side exceeds ``tile.size``."""
        if self.tile is None or max(height, width) <= int(self.tile["size"]):
            return [Tile(0, 0, height, width)]
        return tile_grid(height, width, int(self.tile["size"]), int(self.tile.get("overlap", 0)))

    def tile_iterations(self, tiles: list[Tile]) -> dict[Tile, int]:
        """The most iterations each tile's fit runs, all ensemble members together (the progress bar's unit)."""
        return {tile: self.settings.budget(tile.height, tile.width) * self.settings.ensemble for tile in tiles}

    def denoise(self, image: LoadedImage, on_step: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The denoised pixels of one image, in the file's depth and colour mode. ``on_step(done, total)`` follows
        the fit in tile-iterations (a whole image is one tile; only a tiled image keeps a resume cache)."""
        pixels = image_to_unit(image)
        height, width, channels = pixels.shape
        tiles = self.tiles(height, width)
        batch = max(1, int((self.tile or {}).get("batch", 1)))
        cache = self.tile_cache(image.path, self.fingerprint(image)) if len(tiles) > 1 else None
        if cache is not None:
            cache.open()
        blender = TileBlender(height, width, channels, int(self.tile.get("overlap", 0))) if cache is not None else None
        todo, output = [], None
        for tile in tiles:  # a tiled image: finished tiles go into the blend, the rest are fitted
            cached = cache.load(tile) if cache is not None else None
            if cached is None:
                todo.append(tile)
            else:
                blender.add(tile, cached)
        iterations = self.tile_iterations(tiles)
        total = sum(iterations.values())
        done = total - sum(iterations[tile] for tile in todo)
        if done:
            log.info("%s: %d of %d tiles already done, resuming", image.path.name, len(tiles) - len(todo), len(tiles))
        for start in range(0, len(todo), batch):
            group = todo[start : start + batch]
            noisy = [from_hwc(pixels[t.rows, t.columns]).to(self.device) for t in group]
            report = None if on_step is None else (
                lambda step, _, base=done, size=len(group): on_step(base + size * (step + 1), total))
            for tile, fitted in zip(group, fit_images(self.net, self.architecture, noisy, self.settings, on_step=report)):
                self._log(image.path.name if cache is None else f"{image.path.name} tile {tile.key}", fitted)
                output = to_hwc(fitted.result.image)
                if cache is not None:
                    cache.save(tile, output)
                    blender.add(tile, output)
            done += sum(iterations[tile] for tile in group)
        return unit_to_file_pixels(output if blender is None else blender.result(), image)

    def denoise_file(self, path: Path, on_step: Callable[[int, int], None] | None = None) -> Path:
        """Denoise one file into :meth:`output_path` (a finished tiled image's tile cache is removed) and return
        that path; ``on_step`` as for :meth:`denoise`."""
        target = self.output_path(path)
        write_image(target, self.denoise(read_image(path), on_step=on_step))
        self.tile_cache(path).clear()
        return target

    @staticmethod
    def _log(name: str, fitted: Any) -> None:
        log.info("%s: noise sigma %.1f, texture %.4f -> %s, %d iterations in %.1f s (%s)", name, fitted.estimate.sigma,
                 fitted.estimate.texture, fitted.description, fitted.result.iterations, fitted.result.seconds,
                 fitted.precision)

    def run(self) -> BatchReport:
        images, others = find_inputs(self.input)
        ensure_writable_folder(self.output)
        report = BatchReport(ignored=others)
        todo = []
        for path in images:
            if self.output_path(path).exists() and not self.overwrite:
                report.finished.append(path)
            else:
                todo.append(path)
        with file_progress() as progress:
            files = progress.add_task("denoising", total=len(todo))
            steps = progress.add_task("  fit", total=None)  # tile-iterations, known once the image is read
            for path in todo:
                progress.reset(steps, total=None, description=f"  {path.name}")
                try:
                    self.denoise_file(path, lambda done, total: progress.update(steps, completed=done, total=total))
                    report.written.append(path)
                except DataError as err:  # this file's fault: report it and go on
                    report.failed[path] = str(err)
                progress.advance(files)
        report.print()
        return report
