"""Denoise users' own noisy images with DIP: no clean reference, the noise level and architecture are estimated.

For each input ``photo.jpg`` it writes ``<output>/photo_dip.png`` (PNG, so nothing is lost again): the same size,
upright, in the file's bit depth (8 or 16) and colour mode (gray stays gray; an alpha channel is kept unchanged).
Each image is fitted from scratch (about 800 iterations by default), so large photos take long on a CPU: a
256x256 RGB image with the estimated architecture takes a few minutes on 2 cores, seconds on a GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from visionzoo.data.images import LoadedImage, read_image, write_image_atomic
from visionzoo.dip.recipe import DIPFitSettings, fit_image
from visionzoo.errors import DataError
from visionzoo.files import ensure_writable_folder
from visionzoo.pixels import from_unit, to_unit
from visionzoo.predict.common import BatchReport, find_inputs, progress_bar, resolve_device

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
        device: ``auto``, ``cpu``, ``cuda``...
    """

    def __init__(
        self, net: Callable[..., nn.Module], input: str, output: str, overwrite: bool = False,
        architecture: str = "auto", fit: dict[str, Any] | None = None, device: str = "auto",
    ) -> None:
        self.net, self.input, self.output = net, input, Path(output)
        self.overwrite, self.architecture = overwrite, architecture
        self.settings = DIPFitSettings(**(fit or {}))
        self.device = resolve_device(device)

    def output_path(self, image: Path) -> Path:
        return self.output / f"{image.stem}_dip.png"

    def denoise(self, image: LoadedImage, on_step: Callable[[int, Any], None] | None = None) -> np.ndarray:
        """The denoised pixels of one image, in the file's depth and colour mode."""
        noisy = torch.from_numpy(image_to_unit(image)).permute(2, 0, 1)[None].to(self.device)
        fitted = fit_image(self.net, self.architecture, noisy, self.settings, on_step=on_step)
        log.info("%s: noise sigma %.1f, texture %.4f -> %s, %d iterations in %.1f s", image.path.name,
                 fitted.estimate.sigma, fitted.estimate.texture, fitted.description, fitted.result.iterations,
                 fitted.result.seconds)
        return unit_to_file_pixels(fitted.result.image[0].permute(1, 2, 0).float().cpu().numpy(), image)

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
        with progress_bar() as progress:
            files = progress.add_task("denoising", total=len(todo))
            steps = progress.add_task("  fit", total=self.settings.iterations)
            for path in todo:
                progress.reset(steps, total=self.settings.iterations, description=f"  {path.name}")
                try:
                    image = read_image(path)
                    pixels = self.denoise(image, on_step=lambda step, _: progress.update(steps, completed=step + 1))
                    write_image_atomic(self.output_path(path), pixels)
                    report.written.append(path)
                except DataError as err:  # this file's fault: report it and go on
                    report.failed[path] = str(err)
                progress.advance(files)
        report.print()
        return report
