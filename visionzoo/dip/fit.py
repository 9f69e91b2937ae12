"""Fitting Deep Image Prior generators to noisy images (Ulyanov et al.'s recipe), one image or a batch.

A fixed uniform noise input ``z`` (x0.1), perturbed by ``N(0, reg_noise_std^2)`` at every iteration, is mapped by
the generator to the image; Adam minimises the MSE to the noisy image; the returned image is the exponential
moving average of the outputs (with a :class:`~visionzoo.dip.sure.SURELoss` objective, the generator is fed the
noisy image and minimises SURE instead). If the PSNR of the output against the noisy image drops by more than
``backtrack_db`` from one iteration to the next (a collapse), the weights go back to the last good ones (the
optimiser state is kept, as in the original). ``precision="bf16"`` runs the generator under bfloat16 autocast
(weights, optimiser, loss and moving average stay float32); batched, it needs a CUDA device (PyTorch's CPU
autocast does not reach through ``vmap``). An optional early-stopping rule (:mod:`visionzoo.dip.stopping`)
decides when to stop and which moving average to return.

:func:`fit_dip` trains one generator in place. :func:`fit_dip_batch` fits several same-size images at once, one
independent generator each: the generators (one architecture, each its own initialisation) are stacked into
batched parameters and run through ``torch.func.vmap``, so every convolution processes all images in one call.
Both run the same loop (:func:`_fit`) with the same per-image bookkeeping, so with the same seeds a batched image
gets :func:`fit_dip`'s result up to float rounding. Batching pays off where one image leaves the device idle (small
images on a CPU, any size on a GPU); one image alone is faster without ``vmap``, hence the two paths
(research/dip/LOG.md "Fitting", research/dip/DIP_GPU.md).
BatchNorm layers use the statistics of their own image at every step, as DIP's always-training BatchNorm does.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from visionzoo.dip.stopping import EarlyStop
from visionzoo.dip.sure import SURELoss, mc_divergence, sure


#: Noise sigmas (0..255) up to this get the sigma-25 perturbation, above it the sigma-50 one: the midpoint of the
#: two calibrated levels, since the sigma is estimated and reads above 25 for most sigma-25 images
#: (research/dip/LOG.md "The perturbation's cut").
REG_NOISE_CUT = 37.5


def default_reg_noise_std(sigma: float) -> float:
    """DIP's input perturbation for a noise level on the 0..255 scale: 1/30 for sigma 25, 1/20 for sigma 50 (the
    cut between them at :data:`REG_NOISE_CUT`)."""
    return 1.0 / 30 if sigma <= REG_NOISE_CUT else 1.0 / 20


#: fp32: the generator in float32; bf16: its forward pass under bfloat16 autocast (weights and loss in float32).
PRECISIONS = ("fp32", "bf16")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 fits are faster at the same
    PSNR (research/dip/LOG.md "bf16 on the CPU"); elsewhere bf16 on the CPU is emulated and slower."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def auto_precision(device: torch.device) -> str:
    """``"auto"`` precision on ``device``: bf16 on a CPU with native bfloat16 (where it is faster at the same PSNR),
    fp32 on GPUs (where bf16 is no faster for these small generators) and other CPUs."""
    return "bf16" if device.type == "cpu" and native_bf16_cpu() else "fp32"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, ...)`` -> ``(N,)`` PSNR in dB of images in [0, 1]."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-20))


@dataclass
class FitResult:
    """The returned output ``(1, C, H, W)`` in [0, 1] (the EMA, at the early-stopping point when one was used),
    per-iteration curves of the accepted steps, backtracks, the iterations run, the iteration whose output was
    returned, and wall seconds (a batch's seconds are its whole time; the recipe shares them out)."""

    image: torch.Tensor
    loss: list[float] = field(default_factory=list)
    psnr_noisy: list[float] = field(default_factory=list)
    psnr_clean: list[float] = field(default_factory=list)
    backtracks: int = 0
    iterations: int = 0
    returned_step: int = -1
    seconds: float = 0.0


class _Bookkeeping:
    """Per-image state of a fit of ``N`` images: moving average, backtracking decision, curves, early stops."""

    def __init__(self, noisy: torch.Tensor, clean: torch.Tensor | None, ema: float, backtrack_db: float,
                 early_stops: Sequence[EarlyStop | None] | None) -> None:
        count = noisy.shape[0]
        self.noisy, self.clean, self.ema, self.backtrack_db = noisy, clean, ema, backtrack_db
        self.early_stops = list(early_stops) if early_stops is not None else [None] * count
        if len(self.early_stops) != count:
            raise ValueError(f"{len(self.early_stops)} early-stopping rules for {count} images")
        self.results = [FitResult(image=torch.zeros_like(noisy[i : i + 1])) for i in range(count)]
        self.running = [True] * count
        self.previous = torch.full((count,), -float("inf"), device=noisy.device)
        self.average: torch.Tensor | None = None

    def update(self, step: int, out: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Record step ``step`` (outputs ``(N, C, H, W)``, losses ``(N,)``); returns ``(N,)`` bool: collapsed."""
        current = out.detach()
        self.average = current if self.average is None else self.ema * self.average + (1 - self.ema) * current
        fit_psnr = psnr_per_image(current, self.noisy)
        collapsed = fit_psnr < self.previous - self.backtrack_db
        self.previous = torch.where(collapsed, self.previous, fit_psnr)
        for i, result in enumerate(self.results):
            if not self.running[i]:
                continue
            result.iterations = step + 1
            if collapsed[i]:
                result.backtracks += 1
                continue
            result.loss.append(losses[i].item())
            result.psnr_noisy.append(fit_psnr[i].item())
            if self.clean is not None:
                result.psnr_clean.append(psnr(self.average[i], self.clean[i]))
            stop = self.early_stops[i]
            if stop is not None and stop.update(step, current[i : i + 1], self.average[i : i + 1]):
                self.running[i] = False
                self._return(i, stop.best_image, stop.best_step)
        return collapsed

    def _return(self, i: int, image: torch.Tensor, step: int) -> None:
        self.results[i].image, self.results[i].returned_step = image.clamp(0, 1), step

    def finish(self, seconds: float) -> list[FitResult]:
        """Results of the images still running: the rule's best image where it has one, else the last average."""
        for i, result in enumerate(self.results):
            if self.running[i] and self.average is not None:
                stop = self.early_stops[i]
                if stop is not None and stop.best_image is not None:
                    self._return(i, stop.best_image, stop.best_step)
                else:
                    self._return(i, self.average[i : i + 1], result.iterations - 1)
            result.seconds = seconds
        return self.results


class _Generators:
    """How the loop runs ``N`` generators: ``forward`` maps noise inputs ``(N, 1, *z)`` to outputs
    ``(N, C, H', W')``; ``restore`` puts the collapsed images' weights back; ``finish`` hands weights back."""

    parameters: list[torch.Tensor]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def restore(self, collapsed: torch.Tensor) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Nothing by default: the generator was trained in place."""


class _OneGenerator(_Generators):
    """One generator trained in place (the plain loop; faster than ``vmap`` for a single image)."""

    def __init__(self, net: nn.Module, device: torch.device) -> None:
        self.net = net.to(device).train()
        self.parameters = list(self.net.parameters())
        self.last_good = [p.detach().clone() for p in self.parameters]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[0])

    @torch.no_grad()
    def restore(self, collapsed: torch.Tensor) -> None:
        pairs = zip(self.parameters, self.last_good) if collapsed[0] else zip(self.last_good, self.parameters)
        for target, source in pairs:
            target.copy_(source)


class _StackedGenerators(_Generators):
    """Several generators of one architecture as batched parameters, run through ``vmap``; the fitted weights are
    copied back into the given modules by :meth:`finish`."""

    def __init__(self, nets: Sequence[nn.Module], device: torch.device) -> None:
        self.nets = nets
        copies = [replace_all_batch_norm_modules_(copy.deepcopy(net)).to(device).train() for net in nets]
        self.params, self.buffers = stack_module_state(copies)
        template = copy.deepcopy(copies[0]).to("meta")
        self._forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))
        self.parameters = list(self.params.values())
        self.last_good = {name: value.detach().clone() for name, value in self.params.items()}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._forward(self.params, self.buffers, z)[:, 0]

    @torch.no_grad()
    def restore(self, collapsed: torch.Tensor) -> None:
        for name, value in self.params.items():
            keep = collapsed.view(-1, *([1] * (value.dim() - 1)))
            value.copy_(torch.where(keep, self.last_good[name], value))
            self.last_good[name].copy_(value)

    @torch.no_grad()
    def finish(self) -> None:
        for i, net in enumerate(self.nets):
            for name, parameter in net.named_parameters():
                parameter.copy_(self.params[name][i])


def _inputs(input_shape: Sequence[int], noisy: torch.Tensor, randoms: Sequence[torch.Generator],
            objective: SURELoss | None) -> torch.Tensor:
    """The generators' fixed inputs ``(N, 1, *input_shape)``: DIP's uniform noise x 0.1, or with SURE the noisy
    images themselves (the generator must then take the image's channels at its size)."""
    if objective is None:
        return torch.stack([torch.rand(1, *input_shape, generator=g, device=noisy.device) * 0.1 for g in randoms])
    if tuple(input_shape) != tuple(noisy.shape[1:]):
        raise ValueError(f"SURE feeds the noisy image {tuple(noisy.shape[1:])} to the generator, which takes "
                         f"{tuple(input_shape)}")
    return noisy[:, None].clone()


def _fit(
    generators: _Generators, input_shape: Sequence[int], noisy: torch.Tensor, iterations: int, lr: float,
    reg_noise_std: float, ema: float, backtrack_db: float, clean: torch.Tensor | None, seeds: Sequence[int],
    early_stops: Sequence[EarlyStop | None] | None, on_step: Callable[[int, list[FitResult]], None] | None,
    objective: SURELoss | None = None, precision: str = "fp32",
) -> list[FitResult]:
    """The loop both entry points run; ``input_shape`` is one generator input's ``(C_z, H_z, W_z)``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    start = time.perf_counter()
    device = noisy.device
    height, width = noisy.shape[-2:]
    # one generator per image on the fit's device: drawing the perturbations on the CPU and copying them over
    # makes a GPU fit wait for the CPU
    randoms = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    z = _inputs(input_shape, noisy, randoms, objective)  # (N, 1, *input_shape)
    sigmas = None if objective is None else torch.tensor(list(objective.sigmas), device=device, dtype=noisy.dtype)
    optimizer = torch.optim.Adam(generators.parameters, lr=lr)
    books = _Bookkeeping(noisy, clean, ema, backtrack_db, early_stops)

    def denoise(images: torch.Tensor) -> torch.Tensor:  # (N, C_z, H_z, W_z) -> (N, C, H, W) float32
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = generators.forward(images[:, None])
        return out[..., :height, :width].float()

    for step in range(iterations):
        perturbation = torch.stack([torch.randn(z.shape[1:], generator=g, device=device) for g in randoms])
        z_step = (z + perturbation * reg_noise_std)[:, 0]
        out = denoise(z_step)  # (N, C, H, W)
        if objective is None:
            losses = F.mse_loss(out, noisy, reduction="none").flatten(1).mean(dim=1)
        else:
            probe = torch.stack([torch.randn(noisy.shape[1:], generator=g, device=device) for g in randoms])
            divergence = mc_divergence(denoise, z_step, out, probe, objective.epsilon)
            losses = sure(noisy, out, divergence, sigmas)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum keeps each generator's gradient its own image's
        optimizer.step()
        with torch.no_grad():
            generators.restore(books.update(step, out, losses))
        if on_step is not None:
            on_step(step, books.results)
        if not any(books.running):
            break
    generators.finish()
    return books.finish(time.perf_counter() - start)


def fit_dip(
    net: nn.Module,
    noisy: torch.Tensor,
    iterations: int = 3000,
    lr: float = 0.01,
    reg_noise_std: float = 1.0 / 30,
    ema: float = 0.99,
    backtrack_db: float = 5.0,
    clean: torch.Tensor | None = None,
    seed: int = 0,
    early_stop: EarlyStop | None = None,
    on_step: Callable[[int, FitResult], None] | None = None,
    objective: SURELoss | None = None,
    precision: str = "fp32",
) -> FitResult:
    """Fit ``net`` (in place) to ``noisy`` ``(1, C, H, W)`` in [0, 1] for at most ``iterations`` steps.

    ``net.input_shape(H, W)`` gives the noise input; outputs larger than the image (decoders) are cropped to it.
    ``clean`` (same shape), when known, is only used to log ``psnr_clean``; nothing in the fit looks at it.
    ``on_step(step, result)`` is called after every iteration. ``objective`` :class:`SURELoss`: the generator is
    fed the noisy image (perturbed by ``reg_noise_std``) and minimises SURE instead of the MSE
    (:mod:`visionzoo.dip.sure`). ``precision``: one of :data:`PRECISIONS`.
    """
    report = None if on_step is None else (lambda step, results: on_step(step, results[0]))
    return _fit(_OneGenerator(net, noisy.device), net.input_shape(*noisy.shape[-2:]), noisy, iterations, lr,
                reg_noise_std, ema, backtrack_db, clean, [seed], None if early_stop is None else [early_stop],
                report, objective, precision)[0]


def fit_dip_batch(
    nets: Sequence[nn.Module],
    noisy: torch.Tensor,
    iterations: int = 3000,
    lr: float = 0.01,
    reg_noise_std: float = 1.0 / 30,
    ema: float = 0.99,
    backtrack_db: float = 5.0,
    clean: torch.Tensor | None = None,
    seeds: Sequence[int] | None = None,
    early_stops: Sequence[EarlyStop | None] | None = None,
    on_step: Callable[[int, list[FitResult]], None] | None = None,
    objective: SURELoss | None = None,
    precision: str = "fp32",
) -> list[FitResult]:
    """Fit ``nets[i]`` to ``noisy[i]`` (``(N, C, H, W)`` in [0, 1]); one :class:`FitResult` per image.

    ``nets`` share one architecture; their fitted weights are copied back into them at the end. ``seeds[i]``
    (default ``i``) seeds image i's noise input and perturbations exactly as ``fit_dip(seed=seeds[i])`` does.
    With ``early_stops``, an image whose rule fired keeps its result while the others go on; the loop ends when
    all have stopped. ``objective``: as in :func:`fit_dip`, one sigma per image; ``precision`` as there.
    """
    if noisy.shape[0] != len(nets):
        raise ValueError(f"{len(nets)} generators for {noisy.shape[0]} images")
    if precision == "bf16" and noisy.device.type != "cuda":
        raise ValueError("batched bf16 fitting needs a CUDA device (CPU autocast does not reach through vmap); "
                         "fit one image at a time or use precision fp32")
    seeds = list(seeds) if seeds is not None else list(range(len(nets)))
    return _fit(_StackedGenerators(nets, noisy.device), nets[0].input_shape(*noisy.shape[-2:]), noisy, iterations,
                lr, reg_noise_std, ema, backtrack_db, clean, seeds, early_stops, on_step, objective, precision)
