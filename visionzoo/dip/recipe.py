"""The per-image DIP recipe: fit settings, the generator for each noisy image (estimated or as configured), and
fitting a list of images with the same-architecture ones batched together.

Used by the evaluation task (:class:`visionzoo.tasks.dip_denoise.DIPDenoiseTask`), the predictor on users' files
(:class:`visionzoo.predict.denoise.DenoisePredictor`) and the benchmarks, so all three fit an image the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from visionzoo.dip.estimate import EstimatedArchitecture, estimate_architecture
from visionzoo.dip.fit import FitResult, default_reg_noise_std, fit_dip, fit_dip_batch
from visionzoo.dip.stopping import make_early_stop
from visionzoo.errors import VisionZooError

ARCHITECTURES = ("auto", "fixed")


@dataclass
class DIPFitSettings:
    """The per-image fit recipe (DIP defaults; see :func:`~visionzoo.dip.fit.fit_dip`).

    ``reg_noise_std`` ``None`` picks DIP's value from the (estimated) noise level; ``early_stop`` ``None`` runs
    all ``iterations``; otherwise a rule of :func:`~visionzoo.dip.stopping.make_early_stop`.
    """

    iterations: int = 800
    lr: float = 0.01
    ema: float = 0.99
    reg_noise_std: float | None = None
    backtrack_db: float = 5.0
    early_stop: dict[str, Any] | None = None
    seed: int = 0


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` tensor -> ``(H, W, C)`` float32 array."""
    return image[0].detach().permute(1, 2, 0).float().cpu().numpy()


def build_generator(
    net: Callable[..., nn.Module], architecture: str, noisy: np.ndarray
) -> tuple[nn.Module, EstimatedArchitecture, str]:
    """The generator for one noisy ``(H, W, C)`` image, the statistics behind the choice, and a description
    such as ``dip_scaled(width=32, num_scales=2)``.

    ``architecture="auto"`` passes the estimated ``width``/``num_scales`` to ``net`` (a ``dip_scaled`` builder);
    ``"fixed"`` builds ``net`` as configured. Either way ``out_channels`` follows the image.
    """
    if architecture not in ARCHITECTURES:
        raise VisionZooError(f"task.architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}")
    estimate = estimate_architecture(noisy)
    configured = dict(getattr(net, "keywords", {}))
    name = configured.pop("name", getattr(net, "__name__", "generator"))
    kwargs: dict[str, Any] = {}
    if architecture == "auto":
        if name != "dip_scaled":
            raise VisionZooError(
                f"task.architecture=auto estimates dip_scaled widths and scales; model={name} needs "
                "task.architecture=fixed"
            )
        kwargs.update(estimate.model_kwargs())
    described = ", ".join(f"{k}={v}" for k, v in {**configured, **kwargs}.items())
    return net(**kwargs, out_channels=noisy.shape[2]), estimate, f"{name}({described})"


@dataclass
class FittedImage:
    """One image's fit: the result (curves, output), the generator, the statistics and its description."""

    result: FitResult
    generator: nn.Module
    estimate: EstimatedArchitecture
    description: str

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())


def fit_images(
    net: Callable[..., nn.Module], architecture: str, noisy: Sequence[torch.Tensor], settings: DIPFitSettings,
    clean: Sequence[torch.Tensor] | None = None, on_step: Callable[[int, list[FitResult]], None] | None = None,
) -> list[FittedImage]:
    """Estimate (or take) the architecture for each ``(1, C, H, W)`` noisy image and fit it.

    Images that get the same architecture, size and perturbation level are fitted together by
    :func:`~visionzoo.dip.fit.fit_dip_batch` (their ``seconds`` are the batch's time shared out); the others by
    :func:`~visionzoo.dip.fit.fit_dip`. ``on_step(step, results)`` follows each group's iterations. Every generator
    starts from ``settings.seed``, so a batched image gets the same result as fitted alone. Safe inside
    Lightning's test/predict loops: networks and inputs are made outside inference mode.
    """
    with torch.inference_mode(False), torch.enable_grad():
        plans = []
        for image in noisy:
            torch.manual_seed(settings.seed)
            generator, estimate, description = build_generator(net, architecture, to_hwc(image))
            reg = settings.reg_noise_std if settings.reg_noise_std is not None else default_reg_noise_std(estimate.sigma)
            plans.append((generator, estimate, description, reg))
        groups: dict[tuple[str, tuple[int, ...], float], list[int]] = {}
        for i, (_, _, description, reg) in enumerate(plans):
            groups.setdefault((description, tuple(noisy[i].shape), reg), []).append(i)
        fitted: list[FittedImage] = [None] * len(noisy)  # type: ignore[list-item]
        for (_, _, reg), members in groups.items():
            stops = [make_early_stop(settings.early_stop, noisy[i], plans[i][1].sigma) for i in members]
            common = dict(iterations=settings.iterations, lr=settings.lr, reg_noise_std=reg, ema=settings.ema,
                          backtrack_db=settings.backtrack_db)
            nets = [plans[i][0] for i in members]
            inputs = torch.cat([noisy[i] for i in members]).clone()
            targets = None if clean is None else torch.cat([clean[i] for i in members]).clone()
            if len(members) == 1:
                report = None if on_step is None else (lambda step, result: on_step(step, [result]))
                results = [fit_dip(nets[0], inputs, **common, clean=targets, seed=settings.seed,
                                   early_stop=stops[0], on_step=report)]
            else:
                results = fit_dip_batch(nets, inputs, **common, clean=targets, seeds=[settings.seed] * len(members),
                                        early_stops=stops, on_step=on_step)
                for result in results:
                    result.seconds /= len(members)
            for i, result in zip(members, results):
                fitted[i] = FittedImage(result, *plans[i][:3])
    return fitted


def fit_image(
    net: Callable[..., nn.Module], architecture: str, noisy: torch.Tensor, settings: DIPFitSettings,
    clean: torch.Tensor | None = None, on_step: Callable[[int, list[FitResult]], None] | None = None,
) -> FittedImage:
    """:func:`fit_images` for one ``(1, C, H, W)`` image."""
    return fit_images(net, architecture, [noisy], settings, None if clean is None else [clean], on_step)[0]
