"""Fitting several same-size images at once: one independent generator per image, run as a batch.

The generators (same architecture, each with its own initialisation) are stacked into batched parameters and run
with ``torch.func.vmap``, so every convolution processes all images in one call. Each image keeps its own noise
input, perturbations, EMA, backtracking and early stopping: with the same seeds the results equal
:func:`~visionzoo.tasks.dip_fit.fit_dip` run image by image (up to float rounding). It pays off where one image
leaves the device idle: on the 2-core CPU 1.3-1.9x at 32-64 px (8 images, width 16-32), none at 128 px.
BatchNorm layers use the statistics of their own image at every step, as DIP's always-training BatchNorm does;
no running statistics are kept. A single image stays with ``fit_dip``'s plain loop: through ``vmap`` one image
runs 20-25% slower (96x96, width 16/32: 15.1 vs 12.0 and 23.9 vs 19.6 ms per iteration on the 2-core CPU).
"""

from __future__ import annotations

import copy
import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from visionzoo.tasks.dip_fit import DiscrepancyStop, FitResult, WindowedVarianceStop, psnr


def _psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(N, ...)`` -> ``(N,)`` PSNR in dB of images in [0, 1]."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-20))


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
    early_stops: Sequence[DiscrepancyStop | WindowedVarianceStop] | None = None,
) -> list[FitResult]:
    """Fit ``nets[i]`` to ``noisy[i]`` (``(N, C, H, W)`` in [0, 1]); one :class:`FitResult` per image.

    ``nets`` share one architecture; their fitted weights are copied back into them at the end. ``seeds[i]``
    (default ``i``) seeds image i's noise input and perturbations exactly as ``fit_dip(seed=seeds[i])`` does.
    With ``early_stops``, an image whose rule fired keeps its result while the others go on; the loop ends when
    all have stopped.
    """
    count = len(nets)
    if noisy.shape[0] != count:
        raise ValueError(f"{count} generators for {noisy.shape[0]} images")
    seeds = list(seeds) if seeds is not None else list(range(count))
    start = time.perf_counter()
    device = noisy.device
    height, width = noisy.shape[-2:]
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    z_shape = nets[0].input_shape(height, width)
    z = torch.stack([torch.rand(1, *z_shape, generator=g) * 0.1 for g in generators]).to(device)  # (N, 1, *z)
    copies = [replace_all_batch_norm_modules_(copy.deepcopy(net)).to(device).train() for net in nets]
    params, buffers = stack_module_state(copies)
    template = copy.deepcopy(copies[0]).to("meta")
    forward = vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    last_good = {name: value.detach().clone() for name, value in params.items()}
    previous = torch.full((count,), -float("inf"), device=device)
    results = [FitResult(image=torch.zeros_like(noisy[i : i + 1])) for i in range(count)]
    running = [True] * count
    average: torch.Tensor | None = None
    for step in range(iterations):
        perturbation = torch.stack([torch.randn(z.shape[1:], generator=g) for g in generators]).to(device)
        out = forward(params, buffers, z + perturbation * reg_noise_std)[:, 0, :, :height, :width]  # (N, C, H, W)
        losses = F.mse_loss(out, noisy, reduction="none").flatten(1).mean(dim=1)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum keeps each generator's gradient its own image's
        optimizer.step()
        with torch.no_grad():
            current = out.detach()
            average = current if average is None else ema * average + (1 - ema) * current
            fit_psnr = _psnr_per_image(current, noisy)
            collapsed = fit_psnr < previous - backtrack_db
            for name, value in params.items():
                keep = collapsed.view(-1, *([1] * (value.dim() - 1)))
                value.copy_(torch.where(keep, last_good[name], value))
                last_good[name].copy_(value)
            previous = torch.where(collapsed, previous, fit_psnr)
            for i in range(count):
                if not running[i]:
                    continue
                results[i].iterations = step + 1
                if collapsed[i]:
                    results[i].backtracks += 1
                    continue
                results[i].loss.append(losses[i].item())
                results[i].psnr_noisy.append(fit_psnr[i].item())
                if clean is not None:
                    results[i].psnr_clean.append(psnr(average[i], clean[i]))
                if early_stops is not None and early_stops[i].update(step, current[i : i + 1], average[i : i + 1]):
                    running[i] = False
                    results[i].image = early_stops[i].best_image.clamp(0, 1)
                    results[i].returned_step = early_stops[i].best_step
        if not any(running):
            break
    with torch.no_grad():
        for i, net in enumerate(nets):
            for name, parameter in net.named_parameters():
                parameter.copy_(params[name][i])
    seconds = time.perf_counter() - start
    for i, result in enumerate(results):
        if running[i]:
            result.image = average[i : i + 1].clamp(0, 1)
            result.returned_step = result.iterations - 1
        result.seconds = seconds
    return results
