"""BEN: confidence/trimap logic on hand-made probability maps, blending, eval-mode outputs."""

from __future__ import annotations

import pytest
import torch

import visionzoo
from visionzoo.models.ben import confidence_map, trimap_from_probability


def test_confidence_map():
    prob = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    torch.testing.assert_close(confidence_map(prob), torch.tensor([1.0, 0.5, 0.0, 0.5, 1.0]))


def test_trimap_thresholds_are_inclusive():
    prob = torch.tensor([0.0, 0.1, 0.11, 0.5, 0.89, 0.9, 1.0])
    expected = torch.tensor([0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0])
    torch.testing.assert_close(trimap_from_probability(prob, low=0.1, high=0.9), expected)


@pytest.mark.parametrize("low, high", [(0.9, 0.1), (-0.1, 0.5), (0.2, 1.5)])
def test_trimap_rejects_bad_thresholds(low, high):
    with pytest.raises(ValueError, match="0 <= low < high <= 1"):
        trimap_from_probability(torch.zeros(1), low, high)


def _ben_with_constant_base(logit: float, **kwargs) -> torch.nn.Module:
    """ben_tiny whose Base outputs ``logit`` everywhere (head weights zero, bias = logit)."""
    model = visionzoo.create_model("ben_tiny", **kwargs).eval()
    head = model.base.head[-1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, logit)
    return model


def test_eval_outputs_alpha_base_confidence():
    model = visionzoo.create_model("ben_tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 96))
    assert set(out) == {"alpha", "base", "confidence"}
    for value in out.values():
        assert value.shape == (2, 1, 64, 96) and value.min() >= 0 and value.max() <= 1


def test_confident_base_pixels_are_kept():
    model = _ben_with_constant_base(5.0)  # p = 0.993 >= high: all foreground, nothing for the Refiner
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(out["base"], torch.full_like(out["base"], torch.sigmoid(torch.tensor(5.0)).item()))
    assert torch.equal(out["alpha"], out["base"])


def test_unknown_pixels_come_from_the_refiner():
    model = _ben_with_constant_base(0.0)  # p = 0.5: all unknown
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        base_logits = torch.zeros(1, 1, 64, 64)
        refined = torch.sigmoid(model.refiner(x, base_logits, torch.zeros_like(base_logits), torch.full_like(base_logits, 0.5)))
    torch.testing.assert_close(out["confidence"], torch.zeros_like(out["confidence"]))
    torch.testing.assert_close(out["alpha"], refined)
    assert not torch.equal(out["alpha"], out["base"])


def test_soft_blend_mixes_by_confidence():
    model = _ben_with_constant_base(1.0, blend="soft")  # p = 0.731, confidence 0.462
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = model(x, refine=True)
        p = torch.sigmoid(torch.tensor(1.0))
        c = (2 * p - 1).abs()
        base_logits = torch.ones(1, 1, 32, 32)
        trimap = torch.full_like(base_logits, 0.5)
        refined = torch.sigmoid(model.refiner(x, base_logits, torch.full_like(base_logits, c.item()), trimap))
    torch.testing.assert_close(out["alpha"], c * p + (1 - c) * refined)


def test_base_only_mode_skips_the_refiner():
    model = visionzoo.create_model("ben_tiny").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32), refine=False)
    assert torch.equal(out["alpha"], out["base"])
