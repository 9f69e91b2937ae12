"""BEN2 Base as published: the state-dict layout, parity with the published code, both file forms, sizes.

The golden numbers come from the published BEN2.py (PramaLLC/BEN2 at 41efc69) filled with the deterministic
weights of ``tests/helpers/deterministic.py``; ``tests/golden/make_ben2_golden.py`` says how to regenerate them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import visionzoo
from tests.helpers.deterministic import deterministic_state_dict, golden_input
from tests.helpers.hub import offline_hub_cache
from visionzoo.errors import VisionZooError
from visionzoo.models.ben2 import BEN2Net, merge_quadrants, split_quadrants
from visionzoo.models.swin import SwinBackbone
from visionzoo.predict.foreground import estimate_foreground

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN / "ben2_base.npz"))


def test_state_dict_has_the_published_names_shapes_and_dtypes():
    published = json.loads((GOLDEN / "ben2_base_keys.json").read_text())
    own = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in BEN2Net().state_dict().items()]
    assert own == published  # same names, shapes, dtypes and order
    assert len(own) == 535 and sum(dtype == "int64" for _, _, dtype in own) == 24
    assert sum(p.numel() for p in BEN2Net().parameters()) == 94_134_658


def test_output_equals_the_published_code(golden):
    """Batch 2 at 384 x 384 (the published code loops over images; the port batches them)."""
    model = BEN2Net().eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()))
    x = golden_input((2, 3, 384, 384))
    with torch.no_grad():
        mask = torch.sigmoid(model(x)["logits"])
        features = model.backbone(split_quadrants(x[:1])[:1])
    np.testing.assert_allclose(mask[..., 3::8, 3::8].numpy(), golden["mask_sub"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(mask.mean(dim=(1, 2, 3)).numpy(), golden["mask_mean"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mask.std(dim=(1, 2, 3)).numpy(), golden["mask_std"], atol=1e-5, rtol=0)
    assert golden["mask_std"].min() > 0.05  # the deterministic weights give a mask with structure to compare
    for i, feature in enumerate(features):
        np.testing.assert_allclose(feature[0].mean(0).numpy(), golden[f"features_{i}"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("form", ["pth", "safetensors", "hub"])
def test_published_file_forms_load_with_no_missing_or_unexpected_keys(form, ben2_published_weights, tmp_path,
                                                                       monkeypatch):
    if form == "hub":
        published = {"model.safetensors": ben2_published_weights["safetensors"]}
        offline_hub_cache(monkeypatch, tmp_path, "PramaLLC/BEN2", published)
        model = visionzoo.create_model("ben2_base", pretrained=True)  # the card's hf-hub:PramaLLC/BEN2/...
    else:
        model = visionzoo.create_model("ben2_base", pretrained=str(ben2_published_weights[form]))
    expected = deterministic_state_dict(model.state_dict())
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())


def test_hub_name_missing_from_the_cache_is_one_clear_error(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(VisionZooError, match=r"hf-hub:PramaLLC/BEN2/model.safetensors: model.safetensors is not in "
                                             r"the Hugging Face cache .* download it from https://huggingface.co/"):
        visionzoo.create_model("ben2_base", pretrained=True)


def test_refined_model_loads_the_published_base(ben2_published_weights):
    model = visionzoo.create_model("ben2_refined", base_weights=str(ben2_published_weights["pth"]))
    expected = deterministic_state_dict(model.base.state_dict())
    assert all(torch.equal(value, expected[key]) for key, value in model.base.state_dict().items())
    assert visionzoo.model_card("ben2_refined").preprocessing.resample == "lanczos"


def test_sizes_the_views_cannot_take_are_clear_errors_and_256_trains():
    model = BEN2Net().eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 256, 512))["logits"].shape == (1, 1, 256, 512)
        with pytest.raises(VisionZooError, match=r"multiples of 128 .* got 320x320"):
            model(torch.zeros(1, 3, 320, 320))
    model.train()(torch.zeros(1, 3, 256, 256))["logits"].mean().backward()  # the empty 1/8 pool is left out
    assert model.multifieldcrossatt.linear1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("factor", [2, 4])
def test_shallow_path_equals_the_full_resolution_convolution_resized(factor):
    model = BEN2Net()
    x = golden_input((2, 3, 64, 128))
    full = F.interpolate(model.shallow(x), scale_factor=1 / factor, mode="bilinear")  # the published computation
    torch.testing.assert_close(model.shallow_downsampled(x, factor), full, atol=1e-5, rtol=1e-5)


def test_quadrants_split_and_merge_in_view_major_order():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    quadrants = split_quadrants(x)
    assert quadrants.shape == (8, 1, 2, 2)
    assert torch.equal(quadrants[0], x[0, :, :2, :2]) and torch.equal(quadrants[1], x[1, :, :2, :2])
    assert torch.equal(quadrants[2], x[0, :, :2, 2:]) and torch.equal(quadrants[7], x[1, :, 2:, 2:])
    assert torch.equal(merge_quadrants(quadrants), x)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    swin = SwinBackbone(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window=4, drop_path_rate=0.0).train()
    x = golden_input((1, 3, 40, 40))  # 10 x 10 tokens: padded to 12 before the shift
    grads = []
    for enabled in (False, True):
        swin.zero_grad()
        swin.grad_checkpointing = enabled
        sum(f.square().mean() for f in swin(x)).backward()
        grads.append([p.grad.clone() for p in swin.parameters()])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(plain, checkpointed, atol=1e-6, rtol=1e-5)


def test_blur_fusion_foreground_equals_the_published_function(golden):
    estimate = estimate_foreground(golden["fg_image"] / 255.0, golden["fg_mask"] / 255.0)
    assert np.array_equal((estimate * 255.0).astype(np.uint8), golden["fg_out"])  # the published uint8 cast
    assert np.abs(golden["fg_out"].astype(int) - golden["fg_image"]).max() > 100  # it does change colours
