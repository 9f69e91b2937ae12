"""The oracle sweep (``benchmarks/dip_oracle.py``) scores the product's own stopping rule on each recorded fit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import visionzoo
from visionzoo.dip.estimate import estimate_noise_sigma
from visionzoo.dip.fit import default_reg_noise_std, fit_dip, psnr
from visionzoo.dip.recipe import from_hwc
from visionzoo.dip.stopping import make_early_stop

SWEEP = Path(__file__).resolve().parents[2] / "benchmarks" / "dip_oracle.py"


def _oracle():
    spec = importlib.util.spec_from_file_location("dip_oracle", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("size, width, iterations, fires", [(32, 16, 500, True), (128, 8, 120, False)])
def test_the_sweep_scores_the_image_the_products_stopping_returns(size, width, iterations, fires):
    """A 32 px fit (discrepancy rule, fires within the budget) and a 128 px fit (settle rule, still running at the
    end of its budget): the sweep's fit runs on to the end, and its ``psnr_stopped`` / ``stopped_at`` equal those of
    ``fit_dip`` stopped by ``make_early_stop({rule: auto})`` itself, on the same seeds."""
    oracle = _oracle()
    job = dict(image="camera", sigma=50.0, width=width, scales=2, size=size, iterations=iterations, threads=1,
               precision="fp32")
    record = oracle._fit(job)
    assert len(record["curve"]) == iterations // oracle.RECORD_EVERY  # the sweep's fit was not stopped

    clean, noisy = oracle._case("camera", 50.0, size)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = visionzoo.create_model("dip_scaled", width=width, num_scales=2, out_channels=clean.shape[2])
    sigma_est = estimate_noise_sigma(noisy) * 255.0
    stop = make_early_stop({"rule": "auto"}, from_hwc(noisy), sigma_est)
    product = fit_dip(net, from_hwc(noisy), iterations=iterations, reg_noise_std=default_reg_noise_std(50.0),
                      early_stop=stop)
    assert record["sigma_est"] == pytest.approx(sigma_est)
    assert record["stopped_at"] == product.returned_step + 1
    assert (record["stopped_at"] < iterations) is fires
    assert record["psnr_stopped"] == pytest.approx(psnr(product.image, from_hwc(clean)), abs=1e-4)
