"""Blending a SURE-trained DIP output with a classical denoiser's by the weight SURE picks (no clean image).

For ``f_a = a f_1 + (1 - a) f_2`` of two denoisers of ``y`` (noise sigma, ``D`` values), SURE is a quadratic in
``a``: ``(|r - a d|^2 - D sigma^2 + 2 sigma^2 (a div_1 + (1 - a) div_2)) / D`` with ``r = y - f_2`` and
``d = f_1 - f_2``, least at ``a* = (r . d - sigma^2 (div_1 - div_2)) / |d|^2``, kept in [0, 1]. The divergences
are Monte-Carlo estimates (:func:`visionzoo.dip.sure.mc_divergence`): the DIP generator's at its final weights
(fed the noisy image, which is why blending needs ``loss=sure``) and the classical denoiser's from one more run
on the probed image.
"""

from __future__ import annotations

import torch


def sure_blend_weight(noisy: torch.Tensor, first: torch.Tensor, second: torch.Tensor, first_divergence: float,
                      second_divergence: float, sigma: float) -> float:
    """The weight ``a`` in [0, 1] of ``first`` in ``a first + (1 - a) second`` that minimises SURE; all images one
    shape (any), ``sigma`` on their scale, divergences summed over all values."""
    residual, difference = (noisy - second).double(), (first - second).double()
    energy = difference.pow(2).sum().item()
    if energy == 0:
        return 0.5
    weight = ((residual * difference).sum().item() - sigma**2 * (first_divergence - second_divergence)) / energy
    return min(1.0, max(0.0, weight))
