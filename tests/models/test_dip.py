"""DIP generators: the published parameter counts, odd sizes, upsampler choices."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import visionzoo
from visionzoo.errors import VisionZooError
from visionzoo.models.dip import Hourglass


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_dip_skip_has_the_original_parameter_count():
    assert _params(visionzoo.create_model("dip_skip")) == 2_217_831


@pytest.mark.parametrize("width, expected", [(32, 58_339), (64, 231_363), (128, 921_475)])
def test_dip_scaled_parameter_counts(width, expected):
    assert _params(visionzoo.create_model("dip_scaled", width=width, num_scales=2)) == expected


@pytest.mark.parametrize("size", [(1, 1), (33, 47), (64, 64), (5, 130)])
def test_odd_sizes_keep_their_shape(size):
    model = visionzoo.create_model("dip_scaled", width=8, num_scales=3, out_channels=1).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 8, *size))
    assert out.shape == (1, 1, *size) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("upsample", ["bilinear", "nearest", "transposed"])
def test_upsamplers(upsample):
    model = visionzoo.create_model("dip_scaled", width=8, upsample=upsample)
    learnt = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(learnt) == (2 if upsample == "transposed" else 0)
    assert model(torch.rand(2, 8, 16, 16)).shape == (2, 3, 16, 16)


def test_skip_branches_add_channels():
    plain = Hourglass(8, 3, (8, 8), (8, 8), (0, 0))
    skipped = Hourglass(8, 3, (8, 8), (8, 8), (4, 4))
    # Per scale: 1x1 skip conv (8*4+4) + its BN (8), and 4 more input channels in the merge BN (8) and 3x3 conv (4*8*9)
    assert _params(skipped) - _params(plain) == 2 * (36 + 8 + 8 + 288)


def test_bad_arguments():
    with pytest.raises(ValueError, match="upsample must be one of"):
        Hourglass(upsample="cubic")
    with pytest.raises(ValueError, match="one entry per scale"):
        Hourglass(channels_down=(8,), channels_up=(8, 8), channels_skip=(0,))


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_noise_estimate_within_ten_percent(sigma):
    from skimage import data

    from visionzoo.dip.estimate import estimate_noise_sigma

    rng = np.random.default_rng(sigma)
    clean = data.camera().astype(np.float64) / 255
    noisy = clean + rng.normal(0, sigma / 255, clean.shape)
    assert estimate_noise_sigma(noisy) * 255 == pytest.approx(sigma, rel=0.10)
    colour = data.astronaut().astype(np.float64) / 255
    noisy_colour = colour + rng.normal(0, sigma / 255, colour.shape)
    assert estimate_noise_sigma(noisy_colour) * 255 == pytest.approx(sigma, rel=0.10)


@pytest.mark.parametrize("sigma", [25, 50])
def test_noise_estimate_on_clipped_noise(sigma):
    """Clipped to [0, 1] (as every saved image is), the noise is weaker near black and white; the estimate reads
    it where the image is away from both. At 256x256 on scikit-image's set the plain wavelet estimate read
    40.0-49.4 for sigma 50 (coffee 40.0, astronaut 40.4); this one 48.1-53.1."""
    from skimage.restoration import estimate_sigma

    from visionzoo.data.denoise import skimage_image
    from visionzoo.dip.estimate import estimate_noise_sigma

    for seed, name in enumerate(["camera", "astronaut", "coffee"]):
        clean = skimage_image(name, 256).astype(np.float64) / 255
        noisy = np.clip(clean + np.random.default_rng(seed).normal(0, sigma / 255, clean.shape), 0, 1)
        assert estimate_noise_sigma(noisy) * 255 == pytest.approx(sigma, rel=0.10), name
        if sigma == 50 and name != "camera":  # what the clipping-aware reading corrects
            assert estimate_sigma(noisy, channel_axis=-1, average_sigmas=True) * 255 < 0.85 * sigma


def test_texture_orders_smooth_below_textured():
    from visionzoo.dip.estimate import texture_strength

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    smooth = 0.5 + 0.3 * np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy)
    grain = cv2.GaussianBlur(rng.normal(0, 1, smooth.shape), (0, 0), 1.5)
    textured = smooth + 0.15 * grain / grain.std()  # band-limited random texture, like grass or gravel
    sigma = 25 / 255
    smooth_noisy = smooth + rng.normal(0, sigma, smooth.shape)
    textured_noisy = textured + rng.normal(0, sigma, smooth.shape)
    assert texture_strength(smooth_noisy) < 0.2 * texture_strength(textured_noisy)
    assert texture_strength(np.full((32, 32), 0.5)) == 0.0


@pytest.mark.parametrize("name, per_layer", [("deep_decoder", 64 * 64 + 2 * 64), ("conv_decoder", 64 * 64 * 9 + 64 + 2 * 64)])
def test_decoder_parameter_counts(name, per_layer):
    # 5 layers (conv + BatchNorm) and a 1x1 output conv to RGB
    assert _params(visionzoo.create_model(name)) == 5 * per_layer + 64 * 3 + 3
    assert visionzoo.create_model(name)(torch.rand(1, 64, 4, 6)).shape == (1, 3, 128, 192)


@pytest.mark.parametrize("size", [(1, 1), (37, 50), (64, 64)])
def test_dip_dla_shapes_and_structure(size):
    from visionzoo.models.necks import DLAUp

    model = visionzoo.create_model("dip_dla", width=8, depth=3, out_channels=1)
    assert isinstance(model.neck, DLAUp) and len(model.neck.stages) == 3  # IDA stages over 4 levels
    assert not [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]  # unlearnt upsampling only
    assert model.input_shape(*size) == (8, *size)
    out = model(torch.rand(2, 8, *size))
    assert out.shape == (2, 1, *size) and 0 <= out.min() and out.max() <= 1


def test_dip_dla_width_and_depth_set_the_size():
    small = _params(visionzoo.create_model("dip_dla", width=16, depth=2))
    assert _params(visionzoo.create_model("dip_dla", width=32, depth=2)) > 3.5 * small
    assert _params(visionzoo.create_model("dip_dla", width=16, depth=4)) > small
    with pytest.raises(ValueError, match="depth must be at least 1"):
        visionzoo.create_model("dip_dla", depth=0)


def test_architecture_rule_thresholds():
    from visionzoo.dip.estimate import ArchitectureRule

    rule = ArchitectureRule("texture", 0.02, (16, 32), num_scales=3)
    assert rule.choose(25.0, 0.01) == (16, 3)
    assert rule.choose(25.0, 0.02) == (32, 3)  # the threshold belongs to the busy class
    assert rule.choose(50.0, 0.019) == (16, 3)  # the noise level does not move a texture threshold
    snr = ArchitectureRule("texture_snr", 0.5, (16, 64), num_scales=2)
    # texture 0.05 over sigma 25/255 = 0.51 -> busy; over sigma 50/255 = 0.255 -> plain
    assert snr.choose(25.0, 0.05) == (64, 2) and snr.choose(50.0, 0.05) == (16, 2)


def test_estimated_architecture_reads_the_noisy_image():
    from visionzoo.dip.estimate import ArchitectureRule, estimate_architecture

    rng = np.random.default_rng(0)
    flat = np.clip(0.5 + rng.normal(0, 25 / 255, (96, 96, 3)), 0, 1)
    rule = ArchitectureRule("texture", 0.02, (16, 32), num_scales=2)
    estimate = estimate_architecture(flat, rule)
    assert estimate.sigma == pytest.approx(25, rel=0.1) and estimate.texture < 0.01
    assert estimate.model_kwargs() == {"width": 16, "num_scales": 2}


def test_images_from_the_large_side_up_get_the_large_architecture():
    from visionzoo.dip.estimate import LARGE_ARCHITECTURE, LARGE_SIDE, ArchitectureRule, estimate_architecture

    rng = np.random.default_rng(0)
    rule = ArchitectureRule("texture", 0.02, (16, 32), num_scales=2)

    def flat(height: int, width: int) -> np.ndarray:
        return np.clip(0.5 + rng.normal(0, 25 / 255, (height, width, 3)), 0, 1)

    assert LARGE_SIDE == 128 and LARGE_ARCHITECTURE == (32, 3)
    # the shorter side decides: 127 x 300 is still the rule's (a plain image: width 16 x 2 scales)
    assert estimate_architecture(flat(127, 300), rule).model_kwargs() == {"width": 16, "num_scales": 2}
    large = estimate_architecture(flat(300, 128), rule)
    assert large.model_kwargs() == {"width": 32, "num_scales": 3}
    assert large.sigma == pytest.approx(25, rel=0.1)  # the statistics are still read
    assert estimate_architecture(flat(300, 128), rule, large_side=None).model_kwargs() == {"width": 16,
                                                                                           "num_scales": 2}


def test_the_iteration_budget_grows_from_the_large_side_up():
    from visionzoo.dip.estimate import iteration_budget
    from visionzoo.dip.recipe import DIPFitSettings

    assert (iteration_budget(127, 300), iteration_budget(300, 128), iteration_budget(96, 96)) == (800, 1400, 800)
    assert iteration_budget(300, 128, large_side=None) == 800
    auto, fixed = DIPFitSettings(), DIPFitSettings(iterations=50)
    assert auto.iterations == "auto" and (auto.budget(256, 256), auto.budget(64, 64)) == (1400, 800)
    assert (fixed.budget(256, 256), fixed.budget(64, 64)) == (50, 50)
    for wrong in (0, -3, "many", True):
        with pytest.raises(VisionZooError, match="task.fit.iterations must be auto"):
            DIPFitSettings(iterations=wrong)
