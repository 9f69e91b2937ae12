"""Stein's unbiased risk estimate (SURE) as a DIP loss that needs no clean image (Jo et al., "Rethinking Deep
Image Prior for Denoising", ICCV 2021).

For a denoiser ``f`` of ``y = x + n``, ``n ~ N(0, sigma^2 I)`` over ``D`` values,
``SURE(y) = |y - f(y)|^2 / D - sigma^2 + 2 sigma^2 div f(y) / D`` has the expectation of ``|f(y) - x|^2 / D``,
the MSE to the clean image. DIP's plain MSE to ``y`` rewards copying the noise; SURE's divergence term charges for
it, so a generator that is fed the noisy image (``f(y) = G(y)``) overfits much later. The divergence is estimated by
one Monte-Carlo probe per step (Ramani et al. 2008): ``div f(y) ~ b . (f(y + eps b) - f(y)) / eps``,
``b ~ N(0, I)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class SURELoss:
    """The SURE objective of a fit: one noise sigma per image (on the image's [0, 1] scale) and the probe step.

    ``epsilon`` is the finite-difference step of the divergence probe in the same units (1e-3: small against the
    image range, large against float32 rounding of the outputs).
    """

    sigmas: Sequence[float]
    epsilon: float = 1e-3

    def __post_init__(self) -> None:
        if not self.sigmas or min(self.sigmas) <= 0 or self.epsilon <= 0:
            raise ValueError("SURE needs a positive noise sigma per image and epsilon > 0")


def mc_divergence(
    denoiser: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor, output: torch.Tensor,
    probe: torch.Tensor, epsilon: float,
) -> torch.Tensor:
    """``(N,)`` Monte-Carlo divergence of ``denoiser`` at ``noisy`` ``(N, ...)``: ``probe . (f(noisy + epsilon
    probe) - output) / epsilon`` per image, ``output = f(noisy)`` and ``probe`` standard normal, ``noisy``'s
    shape. Differentiable in the denoiser's parameters."""
    moved = denoiser(noisy + epsilon * probe)
    return (probe * (moved - output)).flatten(1).sum(dim=1) / epsilon


def sure(noisy: torch.Tensor, output: torch.Tensor, divergence: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """``(N,)`` SURE per image from the noisy images and outputs ``(N, ...)``, their divergences ``(N,)`` and noise
    sigmas ``(N,)``: the unbiased estimate of each output's mean squared error to its clean image."""
    values = noisy[0].numel()
    fit = (output - noisy).pow(2).flatten(1).mean(dim=1)
    return fit - sigmas**2 + 2 * sigmas**2 * divergence / values
