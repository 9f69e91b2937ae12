"""The SURE-chosen blend weight of two denoisers, on linear denoisers whose divergences are known exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from visionzoo.dip.blend import sure_blend_weight
from visionzoo.dip.sure import sure


def _blur(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(images, kernel[None, None], padding=kernel.shape[-1] // 2)


def test_sure_weight_is_the_minimum_of_sure_and_near_the_oracle():
    clean = torch.from_numpy(cv2.resize(data.camera(), (64, 64), interpolation=cv2.INTER_AREA) / 255.0)[None, None]
    sigma = 0.2  # where neither blur is best alone (measured: 19.63 and 20.47 dB; SURE's blend 20.72)
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    light = torch.tensor([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]], dtype=torch.float64)
    ramp = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    heavy = torch.outer(ramp, ramp) / 81.0  # centre tap 9/81
    first, second = _blur(noisy, light), _blur(noisy, heavy)
    values = noisy.numel()
    divergences = (values * 0.4, values * 9 / 81)  # trace of a zero-padded convolution: values x centre tap
    weight = sure_blend_weight(noisy, first, second, *divergences, sigma)
    # the weight minimises SURE over a grid of blends
    grid = torch.linspace(0, 1, 201, dtype=torch.float64)
    risks = [sure(noisy, a * first + (1 - a) * second, torch.tensor([a * divergences[0] + (1 - a) * divergences[1]]),
                  torch.tensor([sigma])).item() for a in grid]
    assert weight == pytest.approx(grid[int(np.argmin(risks))].item(), abs=0.005)
    # and lands near the oracle weight, which needs the clean image
    difference = first - second
    oracle = ((clean - second) * difference).sum().item() / difference.pow(2).sum().item()
    assert 0.0 < weight < 1.0 and weight == pytest.approx(oracle, abs=0.05)
    mse = [float((image - clean).pow(2).mean()) for image in (first, second, weight * first + (1 - weight) * second)]
    assert 10 * np.log10(min(mse[:2]) / mse[2]) > 0.2  # the blend beats both by more than 0.2 dB


def test_weight_stays_in_the_unit_interval():
    noisy = torch.zeros(1, 1, 4, 4)
    assert sure_blend_weight(noisy, noisy + 1.0, noisy, 0.0, 0.0, 0.1) == 0.0  # the first only adds error
    assert sure_blend_weight(noisy, noisy, noisy + 1.0, 0.0, 0.0, 0.1) == 1.0
    assert sure_blend_weight(noisy, noisy, noisy, 0.0, 0.0, 0.1) == 0.5  # identical outputs: any weight
