"""Losses: SSIM parity with torchmetrics, hand-computed IoU/BCE, side outputs at their own resolution."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from visionzoo.tasks.losses import bce_loss, iou_loss, segmentation_loss, ssim


@pytest.mark.parametrize("shape", [(3, 1, 64, 80), (2, 1, 17, 23)])
def test_ssim_matches_torchmetrics(shape):
    generator = torch.Generator().manual_seed(0)
    prob = torch.rand(shape, generator=generator)
    target = (torch.rand(shape, generator=generator) > 0.5).float()
    smooth = torch.nn.functional.avg_pool2d(target, 5, stride=1, padding=2)
    for a, b in ((prob, target), (smooth, target), (target, target)):
        expected = structural_similarity_index_measure(a, b, data_range=1.0)
        torch.testing.assert_close(ssim(a, b), expected, atol=1e-5, rtol=1e-5)


def test_iou_and_bce_by_hand():
    target = torch.zeros(1, 1, 2, 2)
    target[..., 0, :] = 1
    logits = torch.full((1, 1, 2, 2), 0.0)  # p = 0.5 everywhere
    # intersection 1.0, union 2 + 2 - 1 = 3.0, smoothed (1 + 1) / (3 + 1) = 0.5
    assert iou_loss(logits, target).item() == pytest.approx(0.5)
    assert bce_loss(logits, target).item() == pytest.approx(math.log(2))
    weight = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    strong = torch.full((1, 1, 2, 2), 5.0)
    assert bce_loss(strong, target, weight).item() == pytest.approx(math.log1p(math.exp(-5)))


def test_side_outputs_are_scored_against_the_pooled_target():
    target = torch.zeros(1, 1, 8, 8)
    target[..., :4, :] = 1
    side = torch.full((1, 1, 2, 2), -20.0)
    side[..., 0, :] = 20.0  # exactly the pooled target
    total, parts = segmentation_loss(side, target, {"bce": 1.0, "iou": 1.0, "ssim": 0.0})
    assert set(parts) == {"bce", "iou"}
    assert total.item() == pytest.approx(0.0, abs=1e-6)
