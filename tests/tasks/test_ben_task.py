"""BENTask: stage freezing, losses per stage, evaluation rows in the DIS order."""

from __future__ import annotations

import functools

import pytest
import torch

import visionzoo
from visionzoo.errors import VisionZooError
from visionzoo.models.backbones import TINY_DLA_KWARGS
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


def test_ben2_refined_trains_the_refiner_on_the_frozen_published_base():
    net = visionzoo.create_model("ben2_refined", refiner_backbone="dla34", refiner_kwargs=TINY_DLA_KWARGS)
    task = BENTask(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), stage="refiner").train()
    assert not net.base.training and net.refiner.training  # the Base's dropout and drop-path are off
    before = {k: v.clone() for k, v in net.base.state_dict().items()}
    optimizer = task.configure_optimizers()
    image, mask = torch.randn(1, 3, 256, 256), (torch.rand(1, 1, 256, 256) > 0.5).float()
    losses = task.compute_losses(task._forward(image), mask)
    assert set(losses) == {"refiner", "unknown_fraction", "loss"}
    losses["loss"].backward()
    optimizer.step()
    assert all(torch.equal(v, before[k]) for k, v in net.base.state_dict().items())
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in net.refiner.parameters()}


def test_a_model_without_refiner_is_trained_and_scored_as_its_base():
    net = visionzoo.create_model("ben2_base")
    task = BENTask(net, optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), stage="joint",
                   freeze=["backbone"])
    assert task.stage == "base" and task.variants == ("base",)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for n, p in net.named_parameters() if not n.startswith("backbone."))
    task.train()
    assert not net.backbone.training and net.multifieldcrossatt.training
    with pytest.raises(VisionZooError, match="task.stage=refiner: this model has no Refiner"):
        BENTask(net, optimizer=functools.partial(torch.optim.AdamW), stage="refiner")
