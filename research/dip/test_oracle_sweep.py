"""The oracle sweep (``research/dip/dip_oracle.py``) scores the product's own stopping rule on each recorded fit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import visionzoo
from visionzoo.dip.estimate import estimate_noise_sigma
from visionzoo.dip.fit import default_reg_noise_std, fit_dip, fit_dip_batch, psnr
from visionzoo.dip.recipe import from_hwc
from visionzoo.dip.stopping import make_early_stop

SWEEP = Path(__file__).resolve().parent / "dip_oracle.py"


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
    job = dict(images=["camera"], sigma=50.0, width=width, scales=2, size=size, iterations=iterations, threads=1,
               precision="fp32")
    (record,) = oracle._fit(job)
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


def test_a_batched_job_scores_the_products_stopping_of_each_image():
    """Two gray images fitted together (``--batch``): each record's ``psnr_stopped`` / ``stopped_at`` equal those
    of ``fit_dip_batch`` stopped per image by ``make_early_stop({rule: auto})`` (a stopped image's generator keeps
    being stepped, so the others' fits do not change). Each image starts as it would alone (same weights and
    seeds: PSNR at iteration 10 within 1e-3 dB of its fit alone); later the batched sums' rounding compounds
    (0.02 dB apart at iteration 50 here, up to 0.8 dB after 400), so the records are not bit-equal to them."""
    oracle = _oracle()
    images, iterations = ["camera", "coins"], 500
    job = dict(sigma=50.0, width=16, scales=2, size=32, iterations=iterations, threads=1, precision="fp32")
    together = oracle._fit({**job, "images": images})
    assert [(r["image"], r["batch"]) for r in together] == [("camera", 2), ("coins", 2)]

    cases = [oracle._case(image, 50.0, 32) for image in images]
    clean = torch.cat([from_hwc(c) for c, _ in cases])
    noisy = torch.cat([from_hwc(n) for _, n in cases])
    nets = []
    for _ in images:
        torch.manual_seed(0)
        nets.append(visionzoo.create_model("dip_scaled", width=16, num_scales=2, out_channels=1))
    sigmas = [estimate_noise_sigma(n) * 255.0 for _, n in cases]
    stops = [make_early_stop({"rule": "auto"}, noisy[i : i + 1], s) for i, s in enumerate(sigmas)]
    product = fit_dip_batch(nets, noisy, iterations=iterations, reg_noise_std=default_reg_noise_std(50.0),
                            seeds=[0, 0], early_stops=stops)
    for i, record in enumerate(together):
        assert record["sigma_est"] == pytest.approx(sigmas[i])
        assert record["stopped_at"] == product[i].returned_step + 1
        assert record["psnr_stopped"] == pytest.approx(psnr(product[i].image, clean[i : i + 1]), abs=1e-4)
    assert min(r["stopped_at"] for r in together) < iterations  # a rule fired: a stop was compared

    alone = oracle._fit({**job, "images": ["coins"], "iterations": 10})[0]
    assert together[1]["curve"][0] == pytest.approx(alone["curve"][0], abs=1e-3)


def test_batched_jobs_group_images_by_channel_count_architecture_by_architecture():
    """``--batch 4`` over the ten images (6 gray, 4 RGB) at one noise level and two architectures: per
    architecture the gray images in jobs of 4 and 2 and the RGB ones in one of 4; fits already done are left out."""
    import argparse

    oracle = _oracle()
    args = argparse.Namespace(images=None, widths=[16], scales=[2, 3], sigmas=[50.0], size=64, iterations=10,
                              threads=1, precision="fp32", device="cpu", batch=4)
    done = {("camera", 50.0, 16, 2, 64, 10, "fp32")}
    jobs = oracle._jobs(args, done)
    assert [(j["scales"], j["images"]) for j in jobs] == [
        (2, ["coins", "moon", "brick", "grass"]), (2, ["gravel"]), (2, ["astronaut", "coffee", "chelsea", "rocket"]),
        (3, ["camera", "coins", "moon", "brick"]), (3, ["grass", "gravel"]),
        (3, ["astronaut", "coffee", "chelsea", "rocket"])]
    assert len(oracle._jobs(argparse.Namespace(**{**vars(args), "batch": 1}), done)) == 19  # one image per job
