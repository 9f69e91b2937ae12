"""The per-image DIP recipe: fit settings, the generator for each noisy image (estimated or as configured), and
fitting a list of images with the same-architecture ones batched together.

An ensemble (``DIPFitSettings.ensemble = K``) fits K members per image, member k with its own seed
(``seed + k``: initial weights, noise input, perturbations) on the image seen through ``ENSEMBLE_VIEWS[k % 4]``
(identity, horizontal flip, vertical flip, 180-degree rotation: the views that keep the image's shape); the
outputs, turned back, are averaged. Each member stops by its own rule. ``guide="bm3d"`` fits the generator to the
noisy image and BM3D/CBM3D's output at once (:func:`guided_target`); ``blend="bm3d"`` mixes the result with
BM3D/CBM3D by a fixed share (:func:`blend_with_bm3d`). BM3D runs once per image for both
(:func:`classical_denoise`); for the blend alone on a GPU it runs in a thread beside the fit
(:func:`classical_beside_fit`).

Used by the evaluation task (:class:`visionzoo.tasks.dip_denoise.DIPDenoiseTask`), the predictor on users' files
(:class:`visionzoo.predict.denoise.DenoisePredictor`) and the benchmarks, so all three fit an image the same way.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from visionzoo.dip.classical import bm3d_denoise
from visionzoo.dip.estimate import (ITERATIONS, LARGE_ITERATIONS, LARGE_SIDE, EstimatedArchitecture,
                                    estimate_architecture, iteration_budget)
from visionzoo.dip.fit import (PRECISIONS, FitResult, auto_precision, default_reg_noise_std, fit_dip,
                              fit_dip_batch)
from visionzoo.dip.stopping import make_early_stop
from visionzoo.dip.sure import SURELoss
from visionzoo.errors import VisionZooError

ARCHITECTURES = ("auto", "fixed")
#: mse: DIP's loss to the noisy image from a noise input; sure: SURE with the noisy image as the input.
LOSSES = ("mse", "sure")
#: null: the DIP output as it is; bm3d: mixed with BM3D/CBM3D at the estimated sigma (:func:`blend_with_bm3d`).
BLENDS = (None, "bm3d")
#: The DIP output's share in ``blend="bm3d"`` below :data:`LARGE_SIDE`: the fixed share with the best held-out PSNR
#: at 96x96 (``python benchmarks/dip_blend.py``, benchmarks/DIP_BLEND.md).
BLEND_SHARE = 0.25
#: The share from :data:`LARGE_SIDE` up: picked for every image but two with that image held out at 256x256 (both
#: noise levels pooled; benchmarks/DIP_BLEND_256.md). The DIP output is further behind BM3D's there.
LARGE_BLEND_SHARE = 0.10
#: null: DIP's loss to the noisy image alone; bm3d: plus ``guide_weight`` x the loss to BM3D/CBM3D's output.
GUIDES = (None, "bm3d")
#: The guide's weight: the best of 1 / 3 / 9 on the 10 evaluation images at 96x96, sigma 50 (24.55 / 24.60 / 24.46
#: dB; a flat optimum, not held out), docs/dip.md "BM3D's output as a second target".
GUIDE_WEIGHT = 3.0

#: Ensemble views of a ``(1, C, H, W)`` image as the flipped dimensions; each view is its own inverse.
ENSEMBLE_VIEWS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def view(image: torch.Tensor, member: int) -> torch.Tensor:
    """Ensemble member ``member``'s view of ``image`` (and, applied again, back)."""
    dims = ENSEMBLE_VIEWS[member % len(ENSEMBLE_VIEWS)]
    return image.flip(dims) if dims else image


@dataclass
class DIPFitSettings:
    """The per-image fit recipe (DIP defaults; see :func:`~visionzoo.dip.fit.fit_dip`).

    ``iterations``: the most iterations per fit, or ``"auto"`` for the size class's budget
    (:func:`~visionzoo.dip.estimate.iteration_budget`: 800 below 128 px, 1400 from 128 px up); :meth:`budget` gives
    the number for an image. ``reg_noise_std`` ``None`` picks DIP's value from the (estimated) noise level;
    ``early_stop`` ``None`` runs all ``iterations``; otherwise a rule of
    :func:`~visionzoo.dip.stopping.make_early_stop`. ``ensemble``: fits averaged per image (module docstring).
    ``loss``: one of :data:`LOSSES`; ``"sure"`` feeds the noisy image to the generator and uses the estimated noise
    sigma (:mod:`visionzoo.dip.sure`). ``blend``: one of :data:`BLENDS`, the DIP output weighing ``blend_share``
    (:func:`blend_with_bm3d`; ``"auto"``: by the size class, :meth:`share`). ``guide``: one of :data:`GUIDES`,
    BM3D's output as a second target weighing ``guide_weight`` (:func:`guided_target`). ``precision``: ``"auto"``
    (:func:`~visionzoo.dip.fit.auto_precision`: bf16 on a CPU with native bfloat16, fp32 elsewhere) or one of
    :data:`~visionzoo.dip.fit.PRECISIONS` (``"bf16"``: the generator under bfloat16 autocast); :meth:`precision_on`
    resolves it for a device.
    """

    iterations: int | str = "auto"
    lr: float = 0.01
    ema: float = 0.99
    reg_noise_std: float | None = None
    backtrack_db: float = 5.0
    early_stop: dict[str, Any] | None = None
    seed: int = 0
    ensemble: int = 1
    loss: str = "mse"
    blend: str | None = None
    blend_share: float | str = "auto"
    guide: str | None = None
    guide_weight: float = GUIDE_WEIGHT
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.iterations != "auto" and (isinstance(self.iterations, (str, bool)) or self.iterations < 1):
            raise VisionZooError(f"task.fit.iterations must be auto ({ITERATIONS} below {LARGE_SIDE} px, "
                                 f"{LARGE_ITERATIONS} from {LARGE_SIDE} px up) or a number of iterations of 1 or "
                                 f"more, not {self.iterations!r}")
        if self.ensemble < 1:
            raise VisionZooError(f"task.fit.ensemble must be 1 or more fits per image, not {self.ensemble}")
        if self.loss not in LOSSES:
            raise VisionZooError(f"task.fit.loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.blend not in BLENDS:
            raise VisionZooError(f"task.fit.blend must be bm3d or null, not {self.blend!r}")
        if self.blend_share != "auto" and (isinstance(self.blend_share, (str, bool))
                                           or not 0.0 <= self.blend_share <= 1.0):
            raise VisionZooError(f"task.fit.blend_share is the DIP output's share in the blend, auto ({BLEND_SHARE} "
                                 f"below {LARGE_SIDE} px, {LARGE_BLEND_SHARE} from {LARGE_SIDE} px up) or between 0 "
                                 f"and 1, not {self.blend_share!r}")
        if self.guide not in GUIDES:
            raise VisionZooError(f"task.fit.guide must be bm3d or null, not {self.guide!r}")
        if self.guide_weight < 0:
            raise VisionZooError(f"task.fit.guide_weight weighs the loss to BM3D's output, 0 or more, "
                                 f"not {self.guide_weight}")
        if self.guide is not None and self.loss != "mse":
            raise VisionZooError("task.fit.guide=bm3d needs task.fit.loss=mse (SURE needs the noisy image as the "
                                 "target); set one of them")
        if self.precision not in ("auto", *PRECISIONS):
            raise VisionZooError(f"task.fit.precision must be one of auto, {', '.join(PRECISIONS)}, "
                                 f"not {self.precision!r}")
        make_early_stop(self.early_stop, torch.full((1, 1, 2, 2), 0.5), 25.0)  # a wrong rule fails before any fit

    def budget(self, height: int, width: int) -> int:
        """The most iterations per fit of an ``height`` x ``width`` image."""
        return iteration_budget(height, width) if self.iterations == "auto" else int(self.iterations)

    def precision_on(self, device: torch.device) -> str:
        """The precision a fit on ``device`` runs in: ``fp32`` or ``bf16``."""
        return auto_precision(device) if self.precision == "auto" else self.precision

    def share(self, height: int, width: int) -> float:
        """The DIP output's share in the blend for an ``height`` x ``width`` image."""
        if self.blend_share != "auto":
            return float(self.blend_share)
        return LARGE_BLEND_SHARE if min(height, width) >= LARGE_SIDE else BLEND_SHARE


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` tensor -> ``(H, W, C)`` float32 array."""
    return image[0].detach().permute(1, 2, 0).float().cpu().numpy()


def from_hwc(image: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` array -> ``(1, C, H, W)`` tensor sharing its memory (the inverse of :func:`to_hwc`)."""
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def build_generator(
    net: Callable[..., nn.Module], architecture: str, noisy: np.ndarray, estimate: EstimatedArchitecture | None = None,
    image_input: bool = False,
) -> tuple[nn.Module, EstimatedArchitecture, str]:
    """The generator for one noisy ``(H, W, C)`` image, the statistics behind the choice, and a description
    such as ``dip_scaled(width=32, num_scales=2)``.

    ``architecture="auto"`` passes the estimated ``width``/``num_scales`` to ``net`` (a ``dip_scaled`` builder);
    ``"fixed"`` builds ``net`` as configured. Either way ``out_channels`` follows the image; ``image_input``
    makes the input depth the image's channels too (the generator is fed the noisy image). ``estimate``: the
    image's statistics when already known (otherwise estimated here).
    """
    if architecture not in ARCHITECTURES:
        raise VisionZooError(f"task.architecture must be one of {', '.join(ARCHITECTURES)}, not {architecture!r}")
    estimate = estimate if estimate is not None else estimate_architecture(noisy)
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
    if image_input:
        kwargs["in_channels"] = noisy.shape[2]
    try:
        generator = net(**kwargs, out_channels=noisy.shape[2])
    except TypeError as err:
        if not image_input:
            raise
        raise VisionZooError(f"model={name} cannot be fed the noisy image (task.fit.loss=sure): {err}") from None
    return generator, estimate, f"{name}({described})"


@dataclass
class FittedImage:
    """One image's fit: the result, the generator, the statistics and its description; with an ensemble,
    ``members`` holds every member's own result (in its view) and ``result`` their average: its ``image`` the
    mean of the outputs turned back, its curves the first member's, ``iterations`` / ``returned_step`` the
    longest member's, ``backtracks`` and ``seconds`` summed."""

    result: FitResult
    generator: nn.Module
    estimate: EstimatedArchitecture
    description: str
    members: list[FitResult] = field(default_factory=list)
    blend_weight: float | None = None  # the DIP output's share when blended with BM3D
    unblended: torch.Tensor | None = None  # the DIP output before the blend ``(1, C, H, W)``, when blended
    #: BM3D/CBM3D at the estimated sigma ``(1, C, H, W)`` and its seconds, when the guide or blend ran it (run
    #: beside the fit, only the time the fit waited for it after its end is in ``result.seconds``)
    classical: torch.Tensor | None = None
    classical_seconds: float = 0.0
    precision: str = "fp32"  # the precision the fit ran in (``settings.precision`` resolved for the device)

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.generator.parameters())


def _average(members: Sequence[FitResult]) -> FitResult:
    """The ensemble's result from its members' (images already turned back)."""
    first = members[0]
    return FitResult(
        image=torch.stack([m.image for m in members]).mean(dim=0), loss=first.loss, psnr_noisy=first.psnr_noisy,
        psnr_clean=first.psnr_clean, backtracks=sum(m.backtracks for m in members),
        iterations=max(m.iterations for m in members), returned_step=max(m.returned_step for m in members),
        seconds=sum(m.seconds for m in members))


def _unit_sigma(estimate: EstimatedArchitecture) -> float:
    """The estimated noise sigma on the [0, 1] scale, kept above 0.1 / 255 (SURE and BM3D need sigma > 0)."""
    return max(estimate.sigma, 0.1) / 255.0


@dataclass
class _Member:
    """One fit of the recipe: image ``index`` seen through ``view`` number ``member``, with its generator."""

    index: int
    member: int
    generator: nn.Module
    estimate: EstimatedArchitecture
    description: str
    reg: float


def _plan(net: Callable[..., nn.Module], architecture: str, noisy: Sequence[torch.Tensor],
          settings: DIPFitSettings) -> list[_Member]:
    members = []
    for index, image in enumerate(noisy):
        estimate = None
        for member in range(settings.ensemble):
            torch.manual_seed(settings.seed + member)
            generator, estimate, description = build_generator(net, architecture, to_hwc(image), estimate,
                                                               image_input=settings.loss == "sure")
            reg = default_reg_noise_std(estimate.sigma) if settings.reg_noise_std is None else settings.reg_noise_std
            members.append(_Member(index, member, generator, estimate, description, reg))
    return members


def fit_images(
    net: Callable[..., nn.Module], architecture: str, noisy: Sequence[torch.Tensor], settings: DIPFitSettings,
    clean: Sequence[torch.Tensor] | None = None, on_step: Callable[[int, list[FitResult]], None] | None = None,
) -> list[FittedImage]:
    """Estimate (or take) the architecture for each ``(1, C, H, W)`` noisy image and fit it (``settings.ensemble``
    times, averaged).

    Images that get the same architecture, size and perturbation level run together in
    :func:`~visionzoo.dip.fit.fit_dip_batch` (their ``seconds`` are the batch's time shared out; not in bf16 on the
    CPU, where autocast does not reach through vmap), the others by
    :func:`~visionzoo.dip.fit.fit_dip`; ensemble members run one after another (batching them would not pay on the
    CPU at 128 px and up). ``on_step(step, results)`` follows each group's iterations, member k's steps counted from
    ``k x`` the image's :meth:`DIPFitSettings.budget`. Member k's generator starts from ``settings.seed + k``, so a
    batched fit gets the same result as fitted alone. Safe inside Lightning's test/predict loops: networks and
    inputs are made outside inference mode. With a guide the generator is fitted to :func:`guided_target`, while the
    stopping rule still measures the output against the noisy image.
    """
    with torch.inference_mode(False), torch.enable_grad(), ThreadPoolExecutor(1) as pool:
        plans = _plan(net, architecture, noisy, settings)
        estimates = [plans[index * settings.ensemble].estimate for index in range(len(noisy))]

        def run_classical() -> list[tuple[torch.Tensor, float] | None]:
            return [classical_denoise(image, estimate) if settings.guide or settings.blend else None
                    for image, estimate in zip(noisy, estimates)]

        # the guide needs BM3D before the fit; the blend only after it, so on a GPU it runs meanwhile
        beside = bool(settings.blend) and not settings.guide and classical_beside_fit(noisy[0].device)
        later = pool.submit(run_classical) if beside else None
        classical = None if beside else run_classical()  # (the guide reads it below)
        targets = ([guided_target(image, output, settings.guide_weight) for image, (output, _) in zip(noisy, classical)]
                   if settings.guide else list(noisy))
        precision = settings.precision_on(noisy[0].device)
        # CPU autocast does not reach through vmap: bf16 images on the CPU each get a group of their own
        batchable = precision == "fp32" or noisy[0].device.type == "cuda"
        groups: dict[tuple[int, str, tuple[int, ...], float, int | None], list[_Member]] = {}
        for plan in plans:
            key = (plan.member, plan.description, tuple(noisy[plan.index].shape), plan.reg,
                   None if batchable else plan.index)
            groups.setdefault(key, []).append(plan)
        results: dict[tuple[int, int], FitResult] = {}
        for (member, _, shape, reg, _), members in groups.items():
            iterations = settings.budget(*shape[-2:])
            # steps count on across members: member k's step s is reported as k x iterations + s
            report = None if on_step is None else (
                lambda step, fits, base=member * iterations: on_step(base + step, fits))
            inputs = torch.cat([view(targets[m.index], m.member) for m in members]).clone()
            references = None if clean is None else torch.cat([view(clean[m.index], m.member) for m in members])
            stops = [make_early_stop(settings.early_stop, view(noisy[m.index], m.member), m.estimate.sigma)
                     for m in members]
            seeds = [settings.seed + m.member for m in members]
            objective = None if settings.loss == "mse" else SURELoss([_unit_sigma(m.estimate) for m in members])
            common = dict(iterations=iterations, lr=settings.lr, reg_noise_std=reg, ema=settings.ema,
                          backtrack_db=settings.backtrack_db, objective=objective,
                          precision=precision)
            if len(members) == 1:
                single = None if report is None else (lambda step, fit, report=report: report(step, [fit]))
                fits = [fit_dip(members[0].generator, inputs, **common, clean=references, seed=seeds[0],
                                early_stop=stops[0], on_step=single)]
            else:
                fits = fit_dip_batch([m.generator for m in members], inputs, **common, clean=references,
                                     seeds=seeds, early_stops=stops, on_step=report)
                for fit in fits:
                    fit.seconds /= len(members)
            for m, fit in zip(members, fits):
                results[m.index, m.member] = fit
        waited = 0.0  # the fit's wait for BM3D run beside it, shared out below
        if beside:
            start = time.perf_counter()
            classical = later.result()
            waited = time.perf_counter() - start
    fitted = []
    for index in range(len(noisy)):
        mine = plans[index * settings.ensemble : (index + 1) * settings.ensemble]
        members = [results[index, k] for k in range(settings.ensemble)]
        if settings.ensemble == 1:
            image = FittedImage(members[0], mine[0].generator, mine[0].estimate, mine[0].description)
        else:
            turned = [FitResult(**{**vars(m), "image": view(m.image, k)}) for k, m in enumerate(members)]
            image = FittedImage(_average(turned), mine[0].generator, mine[0].estimate, mine[0].description, members)
        image.precision = precision
        if classical[index] is not None:
            image.classical, image.classical_seconds = classical[index]
            image.result.seconds += waited / len(noisy) if beside else image.classical_seconds
            if settings.blend == "bm3d":
                blend_with_bm3d(image, image.classical, settings.share(*image.classical.shape[-2:]))
        fitted.append(image)
    return fitted


def classical_beside_fit(device: torch.device) -> bool:
    """Whether BM3D/CBM3D for the blend runs in a thread while the images are fitted on ``device``: on a GPU, so
    its CPU time hides behind the fit's; on the CPU (where the ``bm3d`` package's threads and the fit's would
    share the same cores) it runs before the fit."""
    return device.type != "cpu"


def classical_denoise(noisy: torch.Tensor, estimate: EstimatedArchitecture) -> tuple[torch.Tensor, float]:
    """BM3D/CBM3D of ``noisy`` ``(1, C, H, W)`` at the estimated sigma (same shape) and its time in seconds."""
    start = time.perf_counter()
    output = from_hwc(bm3d_denoise(to_hwc(noisy), _unit_sigma(estimate)))
    return output.to(noisy), time.perf_counter() - start


def guided_target(noisy: torch.Tensor, classical: torch.Tensor, weight: float) -> torch.Tensor:
    """``(noisy + weight x classical) / (1 + weight)``: the MSE to it is, up to the factor ``1 + weight`` and a
    constant, DIP's loss to the noisy image plus ``weight`` x the loss to the classical output, so fitting it
    fits both (the classical output as a second target). Its noise is ``1 + weight`` times weaker, so the fit
    overfits later; the stopping rule still compares the output with the noisy image."""
    return (noisy + weight * classical) / (1 + weight)


def blend_with_bm3d(fitted: FittedImage, classical: torch.Tensor, share: float) -> None:
    """Mix ``fitted``'s output with ``classical`` (BM3D/CBM3D at the estimated sigma, same shape):
    ``share x DIP + (1 - share) x BM3D``. The share goes to ``fitted.blend_weight``, the DIP output as it was to
    ``fitted.unblended``.

    The share is fixed per size class (calibrated offline, :data:`BLEND_SHARE`, :data:`LARGE_BLEND_SHARE`), not
    estimated per image: a SURE-chosen weight was tried and dropped, because the divergence of a fitted DIP is not
    the divergence of its generator at the final weights (measured near 0, so SURE took the DIP output as
    noise-free) and BM3D's Monte-Carlo divergence varies 3x between probes (docs/dip.md).
    """
    fitted.unblended = fitted.result.image
    fitted.result.image = (share * fitted.result.image + (1 - share) * classical).clamp(0, 1)
    fitted.blend_weight = share


def fit_image(
    net: Callable[..., nn.Module], architecture: str, noisy: torch.Tensor, settings: DIPFitSettings,
    clean: torch.Tensor | None = None, on_step: Callable[[int, list[FitResult]], None] | None = None,
) -> FittedImage:
    """:func:`fit_images` for one ``(1, C, H, W)`` image."""
    return fit_images(net, architecture, [noisy], settings, None if clean is None else [clean], on_step)[0]
