"""BENTask: stage freezing, losses per stage, evaluation rows in the DIS order."""

from __future__ import annotations

import functools

import pytest
import torch

import visionzoo
from visionzoo.errors import VisionZooError
from visionzoo.tasks.ben import BENTask


def _task(stage: str) -> BENTask:
    net = visionzoo.create_model("ben_tiny")
    return BENTask(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), stage=stage)


def test_stage_freezing():
    base_only = _task("base")
    assert all(not p.requires_grad for p in base_only.net.refiner.parameters())
    assert all(p.requires_grad for p in base_only.net.base.parameters())
    refiner_only = _task("refiner")
    assert all(not p.requires_grad for p in refiner_only.net.base.parameters())
    refiner_only.train()
    assert not refiner_only.net.base.training and refiner_only.net.refiner.training
    with pytest.raises(VisionZooError, match="task.stage must be one of base, refiner, joint"):
        _task("all")


@pytest.mark.parametrize("stage, keys", [
    ("base", {"base", "side", "loss", "base_bce", "base_iou", "base_ssim"}),
    ("refiner", {"refiner", "unknown_fraction", "loss"}),
    ("joint", {"base", "side", "refiner", "unknown_fraction", "loss", "base_bce", "base_iou", "base_ssim"}),
])
def test_losses_per_stage(stage, keys):
    task = _task(stage).train()
    image = torch.randn(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.5).float()
    losses = task.compute_losses(task.net(image, refine=stage != "base"), mask)
    assert set(losses) == keys
    expected = sum(losses[k] for k in ("base", "side", "refiner") if k in losses)
    torch.testing.assert_close(losses["loss"], expected)
    losses["loss"].backward()
    trained = task.net.refiner if stage == "refiner" else task.net.base
    assert all(p.grad is not None for p in trained.parameters())
