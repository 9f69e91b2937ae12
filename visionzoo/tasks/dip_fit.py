"""Fitting a Deep Image Prior generator to one noisy image (Ulyanov et al.'s recipe).

A fixed uniform noise input ``z`` (x0.1), perturbed by ``N(0, reg_noise_std^2)`` at every iteration, is mapped by
the generator to the image; Adam minimises the MSE to the noisy image; the returned image is the exponential
moving average of the outputs. If the PSNR of the output against the noisy image drops by more than
``backtrack_db`` from one iteration to the next (a collapse), the weights go back to the last good ones.

Optional early stopping needs no clean image: :class:`DiscrepancyStop` (the default of the denoising task) stops
once the output is as close to the noisy image as the estimated noise level allows; :class:`WindowedVarianceStop`
follows the variance of the last ``window`` outputs (Wang et al., "Early Stopping for Deep Image Prior", 2023): it falls while the network fits
image content and rises once it starts fitting noise, so the fit stops when it has not reached a new minimum for
``patience`` iterations and returns the moving average as it was at the minimum.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def default_reg_noise_std(sigma: float) -> float:
    """DIP's input perturbation for a noise level on the 0..255 scale: 1/30 up to sigma 25, 1/20 above."""
    return 1.0 / 30 if sigma <= 25 else 1.0 / 20


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


class WindowedVarianceStop:
    """Windowed-moving-variance early stopping on the raw outputs.

    ``variance`` at step t is the mean squared distance of the last ``window`` outputs to their mean (per pixel);
    :meth:`update` returns ``True`` once ``patience`` steps have passed without a new minimum. ``best_image`` is
    the EMA output at the minimum and ``best_step`` its (0-based) iteration.
    """

    def __init__(self, window: int = 100, patience: int = 300) -> None:
        if window < 2 or patience < 1:
            raise ValueError("early stopping needs window >= 2 and patience >= 1")
        self.window, self.patience = window, patience
        self.outputs: deque[torch.Tensor] = deque(maxlen=window)
        self.variances: list[float] = []
        self.best_variance = float("inf")
        self.best_step = -1
        self.best_image: torch.Tensor | None = None

    def update(self, step: int, output: torch.Tensor, average: torch.Tensor) -> bool:
        self.outputs.append(output)
        if len(self.outputs) < self.window:
            return False
        stacked = torch.stack(tuple(self.outputs))
        variance = (stacked - stacked.mean(dim=0)).pow(2).mean().item()
        self.variances.append(variance)
        if variance < self.best_variance:
            self.best_variance, self.best_step, self.best_image = variance, step, average.clone()
        return step - self.best_step >= self.patience


#: The discrepancy-stopping factor calibrated by the oracle sweep (benchmarks/DIP_ORACLE.md).
DISCREPANCY_FACTOR = 1.0


class DiscrepancyStop:
    """Morozov's discrepancy principle on the EMA output: stop at the first step where its mean squared distance to
    the noisy image ``(1, C, H, W)`` has fallen to ``factor x sigma^2``, ``sigma`` the (estimated) noise standard
    deviation on the image's [0, 1] scale. Fitting closer than the noise level can only mean fitting the noise.

    ``factor`` is calibrated by the oracle sweep (``benchmarks/dip_oracle.py``); the check runs every ``every``
    steps. ``best_image`` / ``best_step``: the EMA output and step where the rule fired.
    """

    def __init__(self, noisy: torch.Tensor, sigma: float, factor: float = DISCREPANCY_FACTOR, every: int = 10) -> None:
        if sigma <= 0 or factor <= 0 or every < 1:
            raise ValueError("discrepancy stopping needs sigma > 0, factor > 0 and every >= 1")
        self.noisy, self.threshold, self.every = noisy, factor * sigma**2, every
        self.best_step = -1
        self.best_image: torch.Tensor | None = None
        self.calls = 0

    def update(self, step: int, output: torch.Tensor, average: torch.Tensor) -> bool:
        self.calls += 1
        if self.calls % self.every:
            return False
        if (average - self.noisy).pow(2).mean().item() > self.threshold:
            return False
        self.best_step, self.best_image = step, average.clone()
        return True


@dataclass
class FitResult:
    """The returned output ``(1, C, H, W)`` in [0, 1] (the EMA, at the early-stopping point when one was used),
    per-iteration curves, the iterations run, the iteration whose output was returned, and wall seconds."""

    image: torch.Tensor
    loss: list[float] = field(default_factory=list)
    psnr_noisy: list[float] = field(default_factory=list)
    psnr_clean: list[float] = field(default_factory=list)
    backtracks: int = 0
    iterations: int = 0
    returned_step: int = -1
    seconds: float = 0.0


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
    early_stop: DiscrepancyStop | WindowedVarianceStop | None = None,
    on_step: Callable[[int, FitResult], None] | None = None,
) -> FitResult:
    """Fit ``net`` to ``noisy`` ``(1, C, H, W)`` in [0, 1] for at most ``iterations`` steps.

    ``net.input_shape(H, W)`` gives the noise input; outputs larger than the image (decoders) are cropped to it.

    ``clean`` (same shape), when known, is only used to log ``psnr_clean``; nothing in the fit looks at it.
    """
    start = time.perf_counter()
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
            stop = False
            if fit_psnr < previous_psnr - backtrack_db:  # as the original: parameters back, optimiser state kept
                for parameter, good in zip(parameters, last_good):
                    parameter.copy_(good)
                result.backtracks += 1
            else:
                previous_psnr = fit_psnr
                for good, parameter in zip(last_good, parameters):
                    good.copy_(parameter)
                result.loss.append(loss.item())
                result.psnr_noisy.append(fit_psnr)
                if clean is not None:
                    result.psnr_clean.append(psnr(average, clean))
                stop = early_stop is not None and early_stop.update(step, current, average)
        result.iterations = step + 1
        if on_step is not None:
            on_step(step, result)
        if stop:
            break
    if early_stop is not None and early_stop.best_image is not None:
        average, result.returned_step = early_stop.best_image, early_stop.best_step
    else:
        result.returned_step = result.iterations - 1
    result.image = average.clamp(0, 1) if average is not None else result.image
    result.seconds = time.perf_counter() - start
    return result
