"""BEN v1 Base (``ben_base``) and MVANet (``mvanet``) as published, beside BEN2: one network class, configured.

The golden masks come from the published modules (BEN v1's model.py, MVANet's model/MVANet.py) filled with the
deterministic weights of ``tests/helpers/deterministic.py``; ``tests/golden/make_multiview_golden.py`` says how to
regenerate them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import visionzoo
from tests.helpers.deterministic import deterministic_state_dict, golden_input
from tests.helpers.hub import offline_hub_cache
from visionzoo.errors import VisionZooError, WeightsError
from visionzoo.models.ben2 import MVANET_STYLE, BEN2Net
from visionzoo.models.weights import load_weights

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def key_list(model: nn.Module) -> list[list]:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def released_mvanet_extras() -> dict[str, tuple[int, ...]]:
    """What ``Model_80.pth`` holds beyond the network (MVANet issue #3): MCLM's ``linear1/2`` and a sixth
    attention, each MCRM's ``linear1/2`` and attentions 4-7."""
    def linear_pair(prefix: str) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.linear1.weight": (256, 128), f"{prefix}.linear1.bias": (256,),
                f"{prefix}.linear2.weight": (128, 256), f"{prefix}.linear2.bias": (128,)}

    def attention(prefix: str) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.in_proj_weight": (384, 128), f"{prefix}.in_proj_bias": (384,),
                f"{prefix}.out_proj.weight": (128, 128), f"{prefix}.out_proj.bias": (128,)}

    extras = {**linear_pair("multifieldcrossatt"), **attention("multifieldcrossatt.attention.5")}
    for block in range(1, 5):
        extras.update(linear_pair(f"dec_blk{block}"))
        for index in range(4, 8):
            extras.update(attention(f"dec_blk{block}.attention.{index}"))
    return extras


def test_ben_v1_has_ben2s_layout_and_mvanet_the_published_one():
    assert key_list(visionzoo.create_model("ben_base")) == json.loads((GOLDEN / "ben2_base_keys.json").read_text())
    mvanet = visionzoo.create_model("mvanet")
    published = json.loads((GOLDEN / "mvanet_keys.json").read_text())
    assert key_list(mvanet) == published  # names, shapes, dtypes and order of the official MVANet class
    assert len(published) == 611 and sum(p.numel() for p in mvanet.parameters()) == 94_139_021
    assert sum(k.endswith("running_var") for k, _, _ in published) == 13  # BatchNorm in all 13 blocks (BEN: none)
    names = {k for k, _, _ in published}
    assert {"multifieldcrossatt.linear5.weight", "conv1.2.weight"} <= names  # linear5/6; PReLU's one weight
    assert "multifieldcrossatt.linear1.weight" not in names


@pytest.mark.parametrize("name", ["ben_base", "mvanet"])
def test_output_equals_the_published_code(name):
    golden = np.load(GOLDEN / f"{name}.npz")
    model = visionzoo.create_model(name).eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()))
    with torch.no_grad():
        mask = model(golden_input((1, 3, 384, 384)))["alpha"]
    np.testing.assert_allclose(mask[..., 3::8, 3::8].numpy(), golden["mask_sub"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(mask.mean(dim=(1, 2, 3)).numpy(), golden["mask_mean"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mask.std(dim=(1, 2, 3)).numpy(), golden["mask_std"], atol=1e-5, rtol=0)
    assert golden["mask_std"].min() > 0.1


def test_the_styles_differ_where_the_networks_do():
    """Same weights where the names agree, different blocks: MVANet's forward must not equal BEN's."""
    ben, mvanet = BEN2Net().eval(), BEN2Net(style="mvanet").eval()
    assert isinstance(ben.conv1[1], nn.InstanceNorm2d) and isinstance(ben.conv1[2], nn.GELU)
    assert isinstance(mvanet.conv1[1], nn.BatchNorm2d) and isinstance(mvanet.conv1[2], nn.PReLU)
    assert isinstance(mvanet.upsample1[2], nn.GELU) and isinstance(mvanet.insmask_head[2], nn.PReLU)
    assert mvanet.multifieldcrossatt.activation == "relu" and ben.dec_blk1.activation == "gelu"
    with pytest.raises(VisionZooError, match=r"unknown multi-view network style 'isnet'; choose one of"):
        BEN2Net(style="isnet")


@pytest.mark.parametrize("form", ["model_state_dict", "bare", "safetensors", "hub"])
def test_ben_v1_file_forms_load_with_no_missing_or_unexpected_keys(form, ben2_published_weights, tmp_path,
                                                                   monkeypatch):
    state = torch.load(ben2_published_weights["pth"], weights_only=True)["model_state_dict"]  # BEN_Base.pth form
    if form == "hub":  # the card's hf-hub:PramaLLC/BEN/BEN_Base.pth
        offline_hub_cache(monkeypatch, tmp_path, "PramaLLC/BEN", {"BEN_Base.pth": ben2_published_weights["pth"]})
        model = visionzoo.create_model("ben_base", pretrained=True)
    else:
        path = {"model_state_dict": ben2_published_weights["pth"], "safetensors": ben2_published_weights["safetensors"],
                "bare": tmp_path / "bare.pth"}[form]
        if form == "bare":
            torch.save(state, path)
        model = visionzoo.create_model("ben_base", pretrained=str(path))
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


def test_released_mvanet_checkpoint_loads_with_the_unused_layers_skipped(tmp_path):
    model = BEN2Net(style="mvanet")
    state = deterministic_state_dict(model.state_dict())
    extras = released_mvanet_extras()
    released = {**state, **{k: torch.full(shape, 7.0) for k, shape in extras.items()}}
    torch.save(released, tmp_path / "Model_80.pth")  # a bare state dict, as the authors' training saves it
    report = load_weights(model, tmp_path / "Model_80.pth")
    assert report.clean and report.loaded == 611 and sorted(report.skipped) == sorted(extras)
    assert len(extras) == 88 and all(re.fullmatch(MVANET_STYLE.unused_checkpoint_keys, k) for k in extras)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    assert "88 unused by the network skipped" in report.summary()

    save_file({**released, "dec_blk1.linear9.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match=r"1 unexpected: dec_blk1.linear9.weight"):  # only the documented ones
        load_weights(BEN2Net(style="mvanet"), tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match=r"164 unexpected: conv1.1.bias"):  # BEN's blocks have no BatchNorm
        load_weights(BEN2Net(), tmp_path / "Model_80.pth")


def test_cards_name_source_licence_and_expected_numbers():
    ben, mvanet = visionzoo.model_card("ben_base"), visionzoo.model_card("mvanet")
    assert ben.weights == "hf-hub:PramaLLC/BEN/BEN_Base.pth" and ben.license.startswith("Apache-2.0")
    assert "MAE 0.0309, Dice 0.881, IoU 0.837" in ben.reference and ben.preprocessing.resample == "lanczos"
    assert mvanet.license.startswith("MIT") and "MAE .036" in mvanet.reference
    assert mvanet.preprocessing.resample == "bilinear" and mvanet.defaults == {"style": "mvanet"}
