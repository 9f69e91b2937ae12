"""DIP denoising as a Lightning task: each test batch is fitted from scratch inside ``test_step``.

There is nothing to train: the Lightning test loop only walks the images (devices, DDP sharding, progress bar and
loggers come with it). Fitting is :mod:`visionzoo.dip`'s recipe (:func:`~visionzoo.dip.recipe.fit_images`); this
module only scores it: per image it runs BM3D/CBM3D on the same noisy image for comparison, and records PSNR/SSIM (data range 1, clipped outputs), parameters, iterations and seconds.
:meth:`DIPDenoiseTask.results_table` lists the images with their means at the bottom; pictures (clean, noisy, DIP,
BM3D, and the PSNR/loss curves) go to ``<run dir>/pictures/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn

from visionzoo.data.contract import SyntheticNoise, datamodule_of
from visionzoo.data.images import write_image
from visionzoo.dip.classical import bm3d_denoise
from visionzoo.dip.fit import psnr
from visionzoo.dip.recipe import DIPFitSettings, FittedImage, fit_images, from_hwc, to_hwc
from visionzoo.errors import VisionZooError
from visionzoo.pixels import unit_to_uint8
from visionzoo.tasks.pictures import publish_picture
from visionzoo.visualize import image_grid, line_plot


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two ``(H, W, C)`` images in [0, 1] (scikit-image, data range 1, channels averaged)."""
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2))


def _uint8(image: np.ndarray) -> np.ndarray:
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    return unit_to_uint8(rgb)


class DIPDenoiseTask(L.LightningModule):
    """Per-image DIP denoising benchmark (``eval.py experiment=dip_denoise``).

    Args:
        net: builder of the generator (``partial(create_model, name=...)`` from the model config).
        architecture: ``"auto"`` (estimate width/scales per image; ``dip_scaled``) or ``"fixed"``.
        fit: the fit recipe, :class:`DIPFitSettings` fields.
        baseline: ``"bm3d"`` (BM3D / CBM3D on the same noisy images) or ``None``.
        baseline_sigma: ``"true"`` gives BM3D the synthetic noise level (the usual protocol; for Poisson noise
            the estimate is used) or ``"estimated"``.
        pictures: images drawn into ``<run dir>/pictures/`` (grid and PSNR/loss curves); 0: none.
        save_outputs: write each output (the blend with BM3D when ``fit.blend`` is set) as
            ``<run dir>/denoised/<name>.png`` (8-bit), and with the blend the DIP output alone as
            ``<run dir>/denoised_dip/<name>.png`` (what ``research/dip/dip_blend.py --outputs`` scores shares on).
    """

    def __init__(
        self, net: Callable[..., nn.Module], architecture: str = "auto", fit: dict[str, Any] | None = None,
        baseline: str | None = "bm3d", baseline_sigma: str = "true", pictures: int = 4, save_outputs: bool = False,
    ) -> None:
        super().__init__()
        if baseline not in (None, "bm3d"):
            raise VisionZooError(f"task.baseline must be bm3d or null, not {baseline!r}")
        if baseline_sigma not in ("true", "estimated"):
            raise VisionZooError(f"task.baseline_sigma must be true or estimated, not {baseline_sigma!r}")
        self.net_factory = net
        self.architecture = architecture
        self.settings = DIPFitSettings(**(fit or {}))
        self.baseline, self.baseline_sigma = baseline, baseline_sigma
        self.pictures, self.save_outputs = int(pictures), save_outputs
        self.rows: list[dict[str, Any]] = []
        self._picture_rows: list[tuple[list[np.ndarray], list[str]]] = []

    def _save_output(self, folder: str, name: str, image: np.ndarray) -> None:
        """``(H, W, C)`` in [0, 1] -> ``<run dir>/<folder>/<name>.png``, 8-bit gray or RGB."""
        pixels = unit_to_uint8(image)
        write_image(self.run_dir / folder / f"{name}.png", pixels[..., 0] if pixels.shape[2] == 1 else pixels)

    def on_test_start(self) -> None:
        self.rows, self._picture_rows = [], []
        self.run_dir = Path(self.trainer.default_root_dir)

    def _true_sigma(self) -> float | None:
        data = datamodule_of(self.trainer, SyntheticNoise)
        if data is not None and data.noise == "gaussian":
            return float(data.sigma)
        return None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        fits = fit_images(self.net_factory, self.architecture, batch["noisy"], self.settings, batch["clean"])
        for name, noisy, clean, fitted in zip(batch["name"], batch["noisy"], batch["clean"], fits):
            self._record(name, noisy, clean, fitted)

    def _record(self, name: str, noisy: torch.Tensor, clean: torch.Tensor, fitted: FittedImage) -> None:
        """One image's row, BM3D on it, its outputs and pictures."""
        result, estimate = fitted.result, fitted.estimate
        noisy_np, clean_np, dip_np = to_hwc(noisy), to_hwc(clean), to_hwc(result.image)
        row: dict[str, Any] = {
            "image": name,
            "channels": int(noisy.shape[1]),
            "sigma_est": round(estimate.sigma, 2),
            "texture": round(estimate.texture, 4),
            "model": fitted.description,
            "params": fitted.parameters,
            "iterations": result.iterations,
            "returned_at": result.returned_step + 1,
            "psnr_noisy": psnr(noisy, clean),
            "psnr_dip": psnr(result.image, clean),
            "ssim_dip": ssim(dip_np, clean_np),
            "seconds_dip": result.seconds,
            "precision": fitted.precision,
        }
        if fitted.unblended is not None:  # the output is a blend with BM3D: the DIP output alone beside it
            row.update(dip_weight=round(fitted.blend_weight, 3), psnr_dip_alone=psnr(fitted.unblended, clean),
                       ssim_dip_alone=ssim(to_hwc(fitted.unblended), clean_np))
        captions = [f"{row['psnr_noisy']:.2f} dB", f"{row['psnr_dip']:.2f} dB"]
        tiles = [_uint8(clean_np), _uint8(noisy_np), _uint8(dip_np)]
        if self.baseline == "bm3d":
            true_sigma = self._true_sigma() if self.baseline_sigma == "true" else None
            if true_sigma is None and fitted.classical is not None:  # the guide/blend ran it at the fit's estimate
                bm3d_t, seconds = fitted.classical.cpu(), fitted.classical_seconds
            else:
                sigma = true_sigma / 255.0 if true_sigma is not None else estimate.sigma / 255.0  # the fit's estimate
                start = time.perf_counter()
                bm3d_t = from_hwc(bm3d_denoise(noisy_np, sigma))
                seconds = time.perf_counter() - start
            bm3d_np = to_hwc(bm3d_t)
            row.update(psnr_bm3d=psnr(bm3d_t, clean.cpu()), ssim_bm3d=ssim(bm3d_np, clean_np), seconds_bm3d=seconds)
            captions.append(f"{row['psnr_bm3d']:.2f} dB")
            tiles.append(_uint8(bm3d_np))
        self.rows.append(row)
        if self.save_outputs:
            self._save_output("denoised", name, dip_np)
            if fitted.unblended is not None:
                self._save_output("denoised_dip", name, to_hwc(fitted.unblended))
        if len(self._picture_rows) < self.pictures:
            self._picture_rows.append((tiles, ["", *captions]))
            curves = {"PSNR to clean": result.psnr_clean, "PSNR to noisy": result.psnr_noisy}
            if self.baseline == "bm3d":
                curves["BM3D (to clean)"] = [row["psnr_bm3d"]] * len(result.psnr_clean)
            plot = line_plot(curves, f"{name}: {row['params']:,} parameters", "accepted iteration", "PSNR (dB)")
            loss = line_plot({"MSE to noisy": result.loss}, f"{name}: loss", "accepted iteration", "MSE")
            publish_picture(self, f"{name}_curves", np.concatenate([plot, loss], axis=0))

    def on_test_epoch_end(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (self.rows, self._picture_rows))
            self.rows = [row for rows, _ in gathered for row in rows]
            self._picture_rows = [p for _, pictures in gathered for p in pictures][: self.pictures]
        if self._picture_rows and self.trainer.is_global_zero:
            output = "DIP + BM3D" if self.settings.blend else "DIP"
            titles = ["clean", "noisy", output] + (["BM3D"] if self.baseline else [])
            publish_picture(self, "denoising", image_grid([tiles for tiles, _ in self._picture_rows], titles,
                                                          captions=[captions for _, captions in self._picture_rows]))
        means = self.mean_row()
        for key, value in means.items():
            if isinstance(value, float):
                self.log(f"test/{key}", value, rank_zero_only=True)

    def mean_row(self) -> dict[str, Any]:
        """Means of the measured columns (not of image names, channel counts or model descriptions)."""
        numeric = [k for k, v in (self.rows[0] if self.rows else {}).items()
                   if isinstance(v, (int, float)) and k != "channels"]
        return {"image": "mean", **{k: float(np.mean([row[k] for row in self.rows])) for k in numeric}}

    def results_table(self) -> list[dict[str, Any]]:
        """One row per image, then the means."""
        if not self.rows:
            return []
        return [*self.rows, self.mean_row()]
