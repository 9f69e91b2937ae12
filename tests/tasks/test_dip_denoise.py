"""DIP denoising task, BM3D baseline and predictor: numbers on small images, file depth and colour mode kept."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import pytest
import torch

import visionzoo
from visionzoo.data.denoise import add_noise, skimage_image
from visionzoo.data.images import read_image
from visionzoo.errors import VisionZooError
from visionzoo.predict.denoise import DenoisePredictor, image_to_unit, unit_to_file_pixels
from visionzoo.dip.classical import bm3d_denoise
from visionzoo.dip.recipe import DIPFitSettings, build_generator, fit_image
from visionzoo.tasks.dip_denoise import ssim
from visionzoo.dip.fit import psnr


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr(torch.from_numpy(a), torch.from_numpy(b))


@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_bm3d_beats_the_noisy_image(name):
    clean = skimage_image(name, 64).astype(np.float32) / 255
    noisy = add_noise(clean, sigma=25, seed=0)
    out = bm3d_denoise(noisy, 25 / 255)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert _psnr(out, clean) > _psnr(noisy, clean) + 4.0
    assert ssim(out, clean) > ssim(noisy, clean) + 0.1


def test_ssim_matches_hand_values():
    image = np.random.default_rng(0).random((32, 32, 1)).astype(np.float32)
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image, np.clip(image + 0.5, 0, 1)) < 0.8


def test_auto_architecture_follows_the_estimate_and_the_image_channels():
    noisy = add_noise(skimage_image("astronaut", 64).astype(np.float32) / 255, sigma=25, seed=0)
    net, estimate, described = build_generator(partial(visionzoo.create_model, name="dip_scaled"), "auto", noisy)
    assert (net.in_channels, net.num_scales, net.out_channels) == (estimate.width, estimate.num_scales, 3)
    assert described == f"dip_scaled(width={estimate.width}, num_scales={estimate.num_scales})"
    assert estimate.sigma == pytest.approx(25, rel=0.15)
    fixed, _, described = build_generator(partial(visionzoo.create_model, name="dip_skip"), "fixed", noisy[..., :1])
    assert described == "dip_skip()"
    assert sum(p.numel() for p in fixed.parameters()) == 2_217_831 - 2 * 129  # RGB head -> gray head
    with pytest.raises(VisionZooError, match="needs task.architecture=fixed"):
        build_generator(partial(visionzoo.create_model, name="dip_skip"), "auto", noisy)
    with pytest.raises(VisionZooError, match="task.architecture must be one of"):
        build_generator(partial(visionzoo.create_model, name="dip_scaled"), "search", noisy)


def test_fit_image_denoises_a_small_image():
    clean = torch.from_numpy(skimage_image("camera", 40).astype(np.float32) / 255).permute(2, 0, 1)[None]
    noisy = torch.from_numpy(add_noise(clean.numpy(), sigma=25, seed=0))
    settings = DIPFitSettings(iterations=250)
    with torch.inference_mode():  # as inside Lightning's test loop
        result = fit_image(partial(visionzoo.create_model, name="dip_scaled"), "auto", noisy, settings, clean).result
    assert result.iterations == 250 and len(result.psnr_clean) == 250 - result.backtracks
    assert psnr(result.image, clean) > psnr(noisy, clean) + 2.0


def test_predictor_keeps_depth_colour_and_alpha(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    gray = cv2.resize(skimage_image("camera")[..., 0], (24, 20)).astype(np.uint16) * 257
    cv2.imwrite(str(inputs / "gray16.png"), gray)
    colour = cv2.resize(skimage_image("astronaut"), (24, 20))[..., ::-1]
    cv2.imwrite(str(inputs / "rgba.png"), np.dstack([colour, np.full((20, 24), 77, np.uint8)]))
    (inputs / "broken.jpg").write_bytes(b"not a jpeg")
    predictor = DenoisePredictor(partial(visionzoo.create_model, name="dip_scaled"), str(inputs), str(outputs),
                                 fit={"iterations": 5})
    report = predictor.run()
    assert sorted(p.name for p in report.written) == ["gray16.png", "rgba.png"]
    assert list(report.failed) == [inputs / "broken.jpg"] and "broken.jpg" in report.failed[inputs / "broken.jpg"]
    gray_out = cv2.imread(str(outputs / "gray16_dip.png"), cv2.IMREAD_UNCHANGED)
    rgba_out = cv2.imread(str(outputs / "rgba_dip.png"), cv2.IMREAD_UNCHANGED)
    assert gray_out.shape == (20, 24) and gray_out.dtype == np.uint16
    assert rgba_out.shape == (20, 24, 4) and rgba_out.dtype == np.uint8 and (rgba_out[..., 3] == 77).all()
    assert sorted(p.name for p in outputs.iterdir()) == ["gray16_dip.png", "rgba_dip.png"]  # no temporary files
    assert predictor.run().finished == report.written  # finished images are skipped


def test_pixel_round_trip_at_file_depth(tmp_path):
    pixels = (np.arange(12 * 10 * 3).reshape(12, 10, 3) * 181 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), pixels)
    image = read_image(tmp_path / "c16.png")
    unit = image_to_unit(image)
    assert unit.shape == (12, 10, 3) and unit.max() <= 1.0
    assert np.array_equal(unit_to_file_pixels(unit, image), image.pixels)


def test_early_stop_config_builds_the_named_rule():
    from visionzoo.dip.stopping import make_early_stop
    from visionzoo.dip.stopping import DISCREPANCY_FACTOR, SETTLE_PATIENCE, DiscrepancyStop, SettleStop, \
        WindowedVarianceStop

    noisy = torch.full((1, 1, 4, 4), 0.5)
    stop = make_early_stop({"rule": "discrepancy", "factor": 0.9}, noisy, sigma255=25.5)
    # mid-grey is 5 sigmas from black and white: the clipped noise power is sigma^2 to 1e-5
    assert isinstance(stop, DiscrepancyStop) and stop.threshold(noisy) == pytest.approx(0.9 * 0.1**2, rel=1e-5)
    black = make_early_stop({"rule": "discrepancy", "clipped": False}, noisy, sigma255=25.5)
    assert black.threshold(torch.zeros_like(noisy)) == pytest.approx(DISCREPANCY_FACTOR * 0.1**2)
    assert isinstance(make_early_stop({"rule": "variance", "window": 5, "patience": 9}, noisy, 25.0),
                      WindowedVarianceStop)
    assert make_early_stop(None, noisy, 25.0) is None
    settle = make_early_stop({"rule": "settle", "patience": 40}, noisy, 25.0)
    assert isinstance(settle, SettleStop) and settle.patience == 40
    # auto: discrepancy below 128 px on the shorter side, settle from 128 px up (with its calibrated patience)
    assert isinstance(make_early_stop({"rule": "auto"}, torch.full((1, 3, 127, 300), 0.5), 25.0), DiscrepancyStop)
    large = make_early_stop({"rule": "auto"}, torch.full((1, 3, 128, 300), 0.5), 25.0)
    assert isinstance(large, SettleStop) and large.patience == SETTLE_PATIENCE == 500
    with pytest.raises(VisionZooError, match=r"rule: auto\} takes no options \(got factor\)"):
        make_early_stop({"rule": "auto", "factor": 0.9}, noisy, 25.0)
    with pytest.raises(VisionZooError, match="task.fit.early_stop.rule must be one of auto, discrepancy, settle, "
                                             "variance"):
        make_early_stop({"rule": "patience"}, noisy, 25.0)
    with pytest.raises(VisionZooError, match="task.fit.early_stop: .*unexpected keyword argument 'window'"):
        make_early_stop({"rule": "discrepancy", "window": 5}, noisy, 25.0)
