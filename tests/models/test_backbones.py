"""Backbone wrapper: channels/strides against timm, configurable levels and input channels, ImageNet loading."""

from __future__ import annotations

import pytest
import timm
import torch

from visionzoo.models.backbones import DLA_VARIANTS, TimmFeatures


@pytest.mark.parametrize("variant", DLA_VARIANTS)
def test_channels_and_strides_match_timm(variant):
    ours = TimmFeatures(variant)
    reference = timm.create_model(variant, features_only=True)
    assert ours.channels == reference.feature_info.channels()
    assert ours.strides == reference.feature_info.reduction() == [2, 4, 8, 16, 32]


def test_dla34_levels_as_documented():
    assert TimmFeatures("dla34").channels == [32, 64, 128, 256, 512]
    levels = TimmFeatures("dla34", out_indices=(0, 3, 5))
    assert levels.channels == [16, 128, 512] and levels.strides == [1, 8, 32]
    features = levels(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 16, 64, 64), (1, 128, 8, 8), (1, 512, 2, 2)]


def test_any_timm_features_model_and_input_channels():
    resnet = TimmFeatures("resnet18", in_chans=1)
    assert resnet.strides == [2, 4, 8, 16, 32] and resnet.channels == [64, 64, 128, 256, 512]
    assert resnet(torch.randn(1, 1, 64, 64))[-1].shape == (1, 512, 2, 2)


def test_odd_sizes_are_padded_and_cropped_to_ceil():
    model = TimmFeatures("dla34").eval()
    x = torch.randn(1, 3, 70, 90)
    features = model(x)
    assert [tuple(f.shape[-2:]) for f in features] == [(35, 45), (18, 23), (9, 12), (5, 6), (3, 3)]
    # Padding is at the bottom/right: the top-left of the stride-2 map sees the same pixels as a padded input.
    padded = model(torch.nn.functional.pad(x, (0, 6, 0, 26)))
    torch.testing.assert_close(features[0][..., :20, :20], padded[0][..., :20, :20])


def _original_layout_state_dict() -> dict[str, torch.Tensor]:
    """dla34 ImageNet weights as the authors' code saved them: timm's keys plus the extra tree ``project``
    layers that the original creates in trees with levels > 1 (level3: 64->128, level4: 128->256)."""
    state = timm.create_model("dla34", pretrained=False).state_dict()
    for level, (cin, cout) in {"level3": (64, 128), "level4": (128, 256)}.items():
        state[f"{level}.project.0.weight"] = torch.randn(cout, cin, 1, 1)
        state[f"{level}.project.1.weight"] = torch.ones(cout)
        state[f"{level}.project.1.bias"] = torch.zeros(cout)
        state[f"{level}.project.1.running_mean"] = torch.zeros(cout)
        state[f"{level}.project.1.running_var"] = torch.ones(cout)
        state[f"{level}.project.1.num_batches_tracked"] = torch.tensor(0)
    return state


def test_original_layout_checkpoint_loads_and_reports_extras(tmp_path):
    state = _original_layout_state_dict()
    path = tmp_path / "dla34-ba72cf86.pth"
    torch.save(state, path)
    model = TimmFeatures("dla34", pretrained=str(path)).eval()
    report = model.load_report
    assert report.missing == [] and report.mismatched == []
    extras = ["fc.bias", "fc.weight"] + [
        f"{level}.project.{part}"
        for level in ("level3", "level4")
        for part in ("0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked")
    ]
    assert sorted(report.unexpected) == sorted(extras) and len(extras) == 14
    # The features equal timm's own model carrying the same weights.
    reference = timm.create_model("dla34", features_only=True).eval()
    reference.load_state_dict({k: v for k, v in state.items() if k in reference.state_dict()})
    x = torch.randn(1, 3, 64, 64)
    for ours, theirs in zip(model(x), reference(x)):
        assert torch.equal(ours, theirs)


def test_imagenet_weights_adapt_to_other_input_channels(tmp_path):
    state = timm.create_model("dla34").state_dict()
    path = tmp_path / "dla34.pth"
    torch.save(state, path)
    model = TimmFeatures("dla34", in_chans=1, pretrained=str(path))
    first = model.body.base_layer[0].weight
    assert first.shape == (16, 1, 7, 7)
    torch.testing.assert_close(first[:, 0], state["base_layer.0.weight"].sum(dim=1))
    assert model.load_report.unexpected == ["fc.bias", "fc.weight"] and model.load_report.missing == []


def test_missing_keys_are_reported(tmp_path):
    state = timm.create_model("dla34").state_dict()
    del state["level5.root.conv.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    report = TimmFeatures("dla34", pretrained=str(path)).load_report
    assert report.missing == ["level5.root.conv.weight"]
