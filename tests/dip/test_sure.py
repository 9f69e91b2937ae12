"""SURE: the Monte-Carlo divergence and the risk estimate against their closed forms on a linear denoiser, and a
DIP fit fed the noisy image that SURE keeps from copying the noise."""

from __future__ import annotations

import cv2
import pytest
import torch
import torch.nn.functional as F
from skimage import data

import visionzoo
from visionzoo.dip.fit import fit_dip, psnr
from visionzoo.dip.sure import SURELoss, mc_divergence, sure

KERNEL = torch.tensor([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]], dtype=torch.float64)


def linear_denoiser(images: torch.Tensor) -> torch.Tensor:
    """``A y``: a 3x3 blur with zero padding; every diagonal entry of ``A`` is the centre tap 0.4."""
    return F.conv2d(images, KERNEL.view(1, 1, 3, 3), padding=1)


def _clean(size: int = 32) -> torch.Tensor:
    image = cv2.resize(data.camera(), (size, size), interpolation=cv2.INTER_AREA) / 255.0
    return torch.from_numpy(image)[None, None]


def test_mc_divergence_of_a_linear_denoiser():
    noisy = _clean() + 0.1 * torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    output = linear_denoiser(noisy)
    probes = torch.randn(500, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # one probe: exactly b . A b for a linear map, whatever epsilon
    single = mc_divergence(linear_denoiser, noisy, output, probes[:1], epsilon=1e-3)
    assert single.item() == pytest.approx((probes[:1] * linear_denoiser(probes[:1])).sum().item(), rel=1e-6)
    # many probes: the trace of A, 32 * 32 * 0.4
    many = mc_divergence(linear_denoiser, noisy.expand(500, -1, -1, -1), output.expand(500, -1, -1, -1), probes, 1e-3)
    assert many.mean().item() == pytest.approx(32 * 32 * 0.4, rel=0.02)


def test_sure_is_its_closed_form_and_unbiased_for_the_mse_to_clean():
    clean, sigma = _clean(), 0.1
    values = 32 * 32
    trace = values * 0.4
    noise = torch.randn(400, 1, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * sigma
    noisy = clean + noise
    output = linear_denoiser(noisy)
    risk = sure(noisy, output, torch.full((400,), trace, dtype=torch.float64), torch.full((400,), sigma,
                                                                                         dtype=torch.float64))
    closed = (noisy - output).pow(2).flatten(1).mean(1) - sigma**2 + 2 * sigma**2 * trace / values
    assert torch.allclose(risk, closed, rtol=1e-12)
    true_mse = (output - clean).pow(2).flatten(1).mean(1)
    assert risk.mean().item() == pytest.approx(true_mse.mean().item(), rel=0.02)
    with pytest.raises(ValueError, match="positive noise sigma"):
        SURELoss([0.0])


def test_sure_keeps_a_generator_fed_the_noisy_image_from_copying_it():
    clean = _clean().float()
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(3)) * 25 / 255).clamp(0, 1)
    finals = {}
    # sigma ~ 0 makes SURE the plain MSE to the noisy image: the same generator and input learn to copy the noise
    for name, sigma in (("mse", 1e-6), ("sure", 25 / 255)):
        torch.manual_seed(0)
        net = visionzoo.create_model("dip_scaled", width=16, num_scales=2, out_channels=1, in_channels=1)
        result = fit_dip(net, noisy, iterations=900, reg_noise_std=0.0, clean=clean, objective=SURELoss([sigma]))
        finals[name] = result.psnr_clean[-1]
    # measured: noisy 20.56 dB; MSE peaks at 26.3 dB (iteration ~300) and falls to ~22; SURE rises to ~26.4 and stays
    assert finals["sure"] > psnr(noisy, clean) + 5.0
    assert finals["sure"] > finals["mse"] + 2.5
    with pytest.raises(ValueError, match="feeds the noisy image"):
        fit_dip(visionzoo.create_model("dip_scaled", width=8, out_channels=1), noisy, iterations=1,
                objective=SURELoss([0.1]))
