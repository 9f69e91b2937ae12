"""The per-image DIP recipe: fit settings, the generator for each noisy image (estimated or as configured), and
fitting a list of images with the same-architecture ones batched together.

:func:`fit_images` plans the fits (:func:`build_generator` per image and ensemble member), groups the ones that can
run as one batch (:func:`_groups`), fits each group (:func:`_fit_group`) and, with ``blend="bm3d"``, mixes each
result with BM3D/CBM3D by a fixed share (:func:`blend_with_bm3d`). BM3D runs before the fit on a CPU and in a thread
beside it on a GPU (:func:`classical_beside_fit`).

Experimental options (:class:`ExperimentalFit`, measured and off by default): an ensemble of ``K`` fits per image,
member k with its own seed (``seed + k``) on the image seen through ``ENSEMBLE_VIEWS[k % 4]`` (identity,
horizontal flip, vertical flip, 180-degree rotation), the outputs turned back and averaged; and the SURE loss.

Used by the evaluation task (:class:`visionzoo.tasks.dip_denoise.DIPDenoiseTask`) and the predictor on users' files
(:class:`visionzoo.predict.denoise.DenoisePredictor`), so both fit an image the same way.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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
#: The DIP output's share in the blend below :data:`LARGE_SIDE` (``python research/dip/dip_blend.py --size 96``).
BLEND_SHARE = 0.25
#: The share from :data:`LARGE_SIDE` up (``python research/dip/dip_blend.py --size 256 --outputs ...``).
LARGE_BLEND_SHARE = 0.10

#: Ensemble views of a ``(1, C, H, W)`` image as the flipped dimensions; each view is its own inverse.
ENSEMBLE_VIEWS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def view(image: torch.Tensor, member: int) -> torch.Tensor:
    """Ensemble member ``member``'s view of ``image`` (and, applied again, back)."""
    dims = ENSEMBLE_VIEWS[member % len(ENSEMBLE_VIEWS)]
    return image.flip(dims) if dims else image


@dataclass
class ExperimentalFit:
    """Options measured and kept for research, off by default (``task.fit.experimental``; research/dip/LOG.md).

    ``ensemble``: fits averaged per image (module docstring). ``loss``: one of :data:`LOSSES`; ``"sure"`` feeds the
    noisy image to the generator and uses the estimated noise sigma (:mod:`visionzoo.dip.sure`).
    """

    ensemble: int = 1
    loss: str = "mse"

    def __post_init__(self) -> None:
        if self.ensemble < 1:
            raise VisionZooError(f"task.fit.experimental.ensemble must be 1 or more fits per image, not "
                                 f"{self.ensemble}")
        if self.loss not in LOSSES:
            raise VisionZooError(f"task.fit.experimental.loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")


@dataclass
class DIPFitSettings:
    """The per-image fit recipe (DIP defaults; see :func:`~visionzoo.dip.fit.fit_dip`).

    ``iterations``: the most iterations per fit, or ``"auto"`` for the size class's budget
    (:func:`~visionzoo.dip.estimate.iteration_budget`: 800 below 128 px, 1400 from 128 px up); :meth:`budget` gives
    the number for an image. ``reg_noise_std`` ``None`` picks DIP's value from the (estimated) noise level;
    ``early_stop`` ``None`` runs all ``iterations``; otherwise a rule of
    :func:`~visionzoo.dip.stopping.make_early_stop`. ``blend``: one of :data:`BLENDS`, the DIP output weighing
    ``blend_share`` (:func:`blend_with_bm3d`; ``"auto"``: by the size class, :meth:`share`). ``precision``:
    ``"auto"`` (:func:`~visionzoo.dip.fit.auto_precision`: bf16 on a CPU with native bfloat16, fp32 elsewhere) or
    one of :data:`~visionzoo.dip.fit.PRECISIONS` (``"bf16"``: the generator under bfloat16 autocast);
    :meth:`precision_on` resolves it for a device. ``experimental``: :class:`ExperimentalFit` (or its fields).
    """

    iterations: int | str = "auto"
    lr: float = 0.01
    ema: float = 0.99
    reg_noise_std: float | None = None
    backtrack_db: float = 5.0
    early_stop: dict[str, Any] | None = None
    seed: int = 0
    blend: str | None = None
    blend_share: float | str = "auto"
    precision: str = "auto"
    experimental: ExperimentalFit = field(default_factory=ExperimentalFit)

    def __post_init__(self) -> None:
        if isinstance(self.experimental, Mapping):
            unknown = set(self.experimental) - {f.name for f in fields(ExperimentalFit)}
            if unknown:
                raise VisionZooError(f"task.fit.experimental has no option {sorted(unknown)[0]!r}; it has "
                                     f"{', '.join(f.name for f in fields(ExperimentalFit))}")
            self.experimental = ExperimentalFit(**self.experimental)
        if self.iterations != "auto" and (isinstance(self.iterations, (str, bool)) or self.iterations < 1):
            raise VisionZooError(f"task.fit.iterations must be auto ({ITERATIONS} below {LARGE_SIDE} px, "
                                 f"{LARGE_ITERATIONS} from {LARGE_SIDE} px up) or a number of iterations of 1 or "
                                 f"more, not {self.iterations!r}")
        if self.blend not in BLENDS:
            raise VisionZooError(f"task.fit.blend must be bm3d or null, not {self.blend!r}")
        if self.blend_share != "auto" and (isinstance(self.blend_share, (str, bool))
                                           or not 0.0 <= self.blend_share <= 1.0):
            raise VisionZooError(f"task.fit.blend_share is the DIP output's share in the blend, auto ({BLEND_SHARE} "
                                 f"below {LARGE_SIDE} px, {LARGE_BLEND_SHARE} from {LARGE_SIDE} px up) or between 0 "
                                 f"and 1, not {self.blend_share!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise VisionZooError(f"task.fit.precision must be one of auto, {', '.join(PRECISIONS)}, "
                                 f"not {self.precision!r}")
        make_early_stop(self.early_stop, torch.full((1, 1, 2, 2), 0.5), 25.0)  # a wrong rule fails before any fit

    @property
    def ensemble(self) -> int:
        return self.experimental.ensemble

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
    #: BM3D/CBM3D at the estimated sigma ``(1, C, H, W)`` and its seconds, when the blend ran it (run beside the
    #: fit, only the time the fit waited for it after its end is in ``result.seconds``)
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
                                                               image_input=settings.experimental.loss == "sure")
            reg = default_reg_noise_std(estimate.sigma) if settings.reg_noise_std is None else settings.reg_noise_std
            members.append(_Member(index, member, generator, estimate, description, reg))
    return members


def fit_images(
    net: Callable[..., nn.Module], architecture: str, noisy: Sequence[torch.Tensor], settings: DIPFitSettings,
    clean: Sequence[torch.Tensor] | None = None, on_step: Callable[[int, list[FitResult]], None] | None = None,
) -> list[FittedImage]:
    """Estimate (or take) the architecture for each ``(1, C, H, W)`` noisy image and fit it (``settings.ensemble``
    times, averaged); with ``settings.blend``, blend each result with BM3D/CBM3D.

    Images that get the same architecture, size and perturbation level run together in
    :func:`~visionzoo.dip.fit.fit_dip_batch` (:func:`_groups`), the others by :func:`~visionzoo.dip.fit.fit_dip`;
    ensemble members run one after another. ``on_step(step, results)`` follows each group's iterations, member k's
    steps counted from ``k x`` the image's :meth:`DIPFitSettings.budget`. Member k's generator starts from
    ``settings.seed + k``, so a batched fit gets the same result as fitted alone. Safe inside Lightning's
    test/predict loops: networks and inputs are made outside inference mode.
    """
    with torch.inference_mode(False), torch.enable_grad(), ThreadPoolExecutor(1) as pool:
        plans = _plan(net, architecture, noisy, settings)
        estimates = [plans[index * settings.ensemble].estimate for index in range(len(noisy))]
        blend = settings.blend is not None
        beside = blend and classical_beside_fit(noisy[0].device)
        later = pool.submit(_classical_all, noisy, estimates) if beside else None
        classical = _classical_all(noisy, estimates) if blend and not beside else [None] * len(noisy)
        precision = settings.precision_on(noisy[0].device)
        results: dict[tuple[int, int], FitResult] = {}
        for members in _groups(plans, noisy, precision):
            results.update(_fit_group(members, noisy, clean, settings, precision, on_step))
        waited = 0.0  # the fit's wait for BM3D run beside it, shared out below
        if beside:
            start = time.perf_counter()
            classical = later.result()
            waited = time.perf_counter() - start
    fitted = []
    for index in range(len(noisy)):
        image = _combine(plans[index * settings.ensemble : (index + 1) * settings.ensemble],
                         [results[index, k] for k in range(settings.ensemble)])
        image.precision = precision
        if classical[index] is not None:
            image.classical, image.classical_seconds = classical[index]
            image.result.seconds += waited / len(noisy) if beside else image.classical_seconds
            blend_with_bm3d(image, image.classical, settings.share(*image.classical.shape[-2:]))
        fitted.append(image)
    return fitted


def _groups(plans: Sequence[_Member], noisy: Sequence[torch.Tensor], precision: str) -> list[list[_Member]]:
    """The fits that run as one batch: same ensemble member, architecture, image size and perturbation. CPU
    autocast does not reach through ``vmap``, so bf16 fits on the CPU each get a group of their own."""
    batchable = precision == "fp32" or noisy[0].device.type == "cuda"
    groups: dict[tuple[Any, ...], list[_Member]] = {}
    for plan in plans:
        key = (plan.member, plan.description, tuple(noisy[plan.index].shape), plan.reg,
               None if batchable else plan.index)
        groups.setdefault(key, []).append(plan)
    return list(groups.values())


def _fit_group(
    members: Sequence[_Member], noisy: Sequence[torch.Tensor], clean: Sequence[torch.Tensor] | None,
    settings: DIPFitSettings, precision: str, on_step: Callable[[int, list[FitResult]], None] | None,
) -> dict[tuple[int, int], FitResult]:
    """Fit one group (one :func:`~visionzoo.dip.fit.fit_dip` call, or one batch); results by (image, member).
    A batch's seconds are shared out equally."""
    member, first = members[0].member, members[0]
    iterations = settings.budget(*noisy[first.index].shape[-2:])
    # steps count on across members: member k's step s is reported as k x iterations + s
    report = None if on_step is None else (lambda step, fits, base=member * iterations: on_step(base + step, fits))
    inputs = torch.cat([view(noisy[m.index], m.member) for m in members]).clone()
    references = None if clean is None else torch.cat([view(clean[m.index], m.member) for m in members])
    stops = [make_early_stop(settings.early_stop, view(noisy[m.index], m.member), m.estimate.sigma) for m in members]
    seeds = [settings.seed + m.member for m in members]
    objective = (SURELoss([_unit_sigma(m.estimate) for m in members]) if settings.experimental.loss == "sure"
                 else None)
    common = dict(iterations=iterations, lr=settings.lr, reg_noise_std=first.reg, ema=settings.ema,
                  backtrack_db=settings.backtrack_db, objective=objective, precision=precision)
    if len(members) == 1:
        single = None if report is None else (lambda step, fit: report(step, [fit]))
        fits = [fit_dip(first.generator, inputs, **common, clean=references, seed=seeds[0], early_stop=stops[0],
                        on_step=single)]
    else:
        fits = fit_dip_batch([m.generator for m in members], inputs, **common, clean=references, seeds=seeds,
                             early_stops=stops, on_step=report)
        for fit in fits:
            fit.seconds /= len(members)
    return {(m.index, m.member): fit for m, fit in zip(members, fits)}


def _combine(plans: Sequence[_Member], results: Sequence[FitResult]) -> FittedImage:
    """One image's :class:`FittedImage` from its members' plans and results (an ensemble's turned back and
    averaged)."""
    first = plans[0]
    if len(results) == 1:
        return FittedImage(results[0], first.generator, first.estimate, first.description)
    turned = [FitResult(**{**vars(r), "image": view(r.image, k)}) for k, r in enumerate(results)]
    return FittedImage(_average(turned), first.generator, first.estimate, first.description, list(results))


def _classical_all(noisy: Sequence[torch.Tensor],
                   estimates: Sequence[EstimatedArchitecture]) -> list[tuple[torch.Tensor, float]]:
    """:func:`classical_denoise` of every image at its estimated sigma."""
    return [classical_denoise(image, estimate) for image, estimate in zip(noisy, estimates)]


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


def blend_with_bm3d(fitted: FittedImage, classical: torch.Tensor, share: float) -> None:
    """Mix ``fitted``'s output with ``classical`` (BM3D/CBM3D at the estimated sigma, same shape):
    ``share x DIP + (1 - share) x BM3D``. The share goes to ``fitted.blend_weight``, the DIP output as it was to
    ``fitted.unblended``.

    The share is fixed per size class (calibrated offline, :data:`BLEND_SHARE`, :data:`LARGE_BLEND_SHARE`), not
    estimated per image: the divergence a SURE-chosen weight needs is not the fitted DIP's at its final weights, and
    BM3D's Monte-Carlo divergence follows the probe more than the image (research/dip/LOG.md).
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
