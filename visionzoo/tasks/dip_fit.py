"""Fitting a Deep Image Prior generator to one noisy image (Ulyanov et al.'s recipe).

A fixed uniform noise input ``z`` (x0.1), perturbed by ``N(0, reg_noise_std^2)`` at every iteration, is mapped by
the generator to the image; Adam minimises the MSE to the noisy image; the returned image is the exponential
moving average of the outputs. If the PSNR of the output against the noisy image drops by more than
``backtrack_db`` from one iteration to the next (a collapse), the weights go back to the last good ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


@dataclass
class FitResult:
    """The EMA output ``(1, C, H, W)`` in [0, 1] and per-iteration curves."""

    image: torch.Tensor
    loss: list[float] = field(default_factory=list)
    psnr_noisy: list[float] = field(default_factory=list)
    psnr_clean: list[float] = field(default_factory=list)
    backtracks: int = 0


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
    on_step: Callable[[int, FitResult], None] | None = None,
) -> FitResult:
    """Fit ``net`` to ``noisy`` ``(1, C, H, W)`` in [0, 1].

    ``net.input_shape(H, W)`` gives the noise input; outputs larger than the image (decoders) are cropped to it.

    ``clean`` (same shape), when known, is only used to log ``psnr_clean``; nothing in the fit looks at it.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    device = noisy.device
    height, width = noisy.shape[-2:]
    z = (torch.rand(1, *net.input_shape(height, width), generator=generator) * 0.1).to(device)
    net = net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    result = FitResult(image=torch.zeros_like(noisy))
    average: torch.Tensor | None = None
    parameters = list(net.parameters())
    last_good = [p.detach().clone() for p in parameters]
    previous_psnr = -float("inf")
    for step in range(iterations):
        perturbation = torch.randn(z.shape, generator=generator).to(device) * reg_noise_std
        out = net(z + perturbation)[..., :height, :width]
        loss = F.mse_loss(out, noisy)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            current = out.detach()
            average = current if average is None else ema * average + (1 - ema) * current
            fit_psnr = psnr(current, noisy)
            if fit_psnr < previous_psnr - backtrack_db:  # as the original: parameters back, optimiser state kept
                for parameter, good in zip(parameters, last_good):
                    parameter.copy_(good)
                result.backtracks += 1
                continue
            previous_psnr = fit_psnr
            for good, parameter in zip(last_good, parameters):
                good.copy_(parameter)
            result.loss.append(loss.item())
            result.psnr_noisy.append(fit_psnr)
            if clean is not None:
                result.psnr_clean.append(psnr(average, clean))
        if on_step is not None:
            on_step(step, result)
    result.image = average.clamp(0, 1) if average is not None else result.image
    return result
