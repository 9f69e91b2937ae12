"""Every registered model: builds, forward shapes, gradients reach every trainable parameter, no NaN."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

import visionzoo
from visionzoo.data.synthetic_occ3d import camera_rig
from visionzoo.geometry import SYNTHETIC_GRID, image_affine
from visionzoo.models.registry import builder, model_card

ALL_MODELS = visionzoo.list_models()
#: One name per distinct network: a registration with the same builder and defaults as an earlier one (ben_base is
#: ben2_base's network with other weights) is checked once.
DISTINCT_NETWORKS = [name for i, name in enumerate(ALL_MODELS) if not any(
    builder(name) is builder(other)
    and model_card(name).defaults == model_card(other).defaults for other in ALL_MODELS[:i])]
SIZE = (2, 3, 70, 90)  # odd, not a multiple of 32: padding/cropping must hold shapes
#: Models that need other input sizes: BEN2's views need multiples of 128.
SIZES = {name: (1, 3, 256, 256) for name in ("ben2_base", "ben2_refined", "ben_base", "mvanet")}


def named_outputs(result, prefix: str = "out") -> dict[str, torch.Tensor]:
    """Flatten a model's output (tensor, list or dict, nested) into ``{"out.key.0": tensor}``."""
    if isinstance(result, torch.Tensor):
        return {prefix: result}
    items = result.items() if isinstance(result, dict) else enumerate(result)
    return {k: v for key, value in items for k, v in named_outputs(value, f"{prefix}.{key}").items()}


def expected_shapes(name: str, model: torch.nn.Module, size: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """What each task's forward must return for a ``size`` input, in train mode."""
    batch, _, height, width = size
    task = model_card(name).task
    if task == "features":
        return {
            f"out.{i}": (batch, c, -(-height // s), -(-width // s))
            for i, (c, s) in enumerate(zip(model.channels, model.strides))
        }
    if task == "segmentation":
        return {"out": (batch, model.classifier.out_channels, height, width)}
    if task == "matting":
        full = (batch, 1, height, width)
        strides = getattr(model, "base", model).side_strides
        side = {f"out.side_logits.{i}": (batch, 1, -(-height // s), -(-width // s)) for i, s in enumerate(strides)}
        keys = ("alpha", "base", "confidence", "base_logits")
        keys += ("refined_logits", "trimap") if hasattr(model, "refiner") else ()
        return {**{f"out.{k}": full for k in keys}, **side}
    if task == "occupancy":  # inputs from occupancy_inputs: 2 cameras, 32 x 64 pixels
        return {"out.logits": (1, *model.grid.shape, 18), "out.depth": (1, 2, model.num_depth, 2, 4),
                "out.height": (1, 2, 65, 2, 4)}
    if task == "generation":
        factor = 2 ** getattr(model, "num_upsamples", 0)  # decoders grow a small input; hourglasses keep the size
        return {"out": (batch, model.out_channels, height * factor, width * factor)}
    raise AssertionError(f"add the expected output shapes of task {task!r} to this test")


def test_registry_lists_all_dla_variants():
    for variant in visionzoo.models.DLA_VARIANTS:
        assert variant in ALL_MODELS
    assert visionzoo.list_models("dla34*") == ["dla34", "dla34_up"]
    assert set(visionzoo.list_models(task="segmentation")) >= {"dla34_up", "dla_tiny_up"}


def test_unknown_model_lists_closest_names():
    with pytest.raises(visionzoo.errors.UnknownModelError, match=r"unknown model 'dla43'; closest: dla34"):
        visionzoo.create_model("dla43")


def test_cards_carry_task_size_normalisation_and_licence():
    card = model_card("dla34")
    assert card.task == "features" and card.preprocessing.input_size == (3, 224, 224)
    assert card.preprocessing.mean == (0.485, 0.456, 0.406) and card.preprocessing.std == (0.229, 0.224, 0.225)
    assert card.weights.endswith("dla34-ba72cf86.pth") and card.sha256 == "ba72cf86"
    assert "BSD" in card.license


def occupancy_inputs(frames: int = 1) -> tuple[torch.Tensor, ...]:
    """One sample of two cameras (front, back) of the synthetic rig at 32 x 64 pixels; with ``frames`` > 1 that
    many frames (key first), the car 1 m further back in each older one."""
    rig, cams = camera_rig(0.16), ("CAM_FRONT", "CAM_BACK")
    intrinsics = torch.tensor(np.stack([rig[c][1] for c in cams]), dtype=torch.float32)[None]
    cam2ego = torch.tensor(np.stack([rig[c][0] for c in cams]), dtype=torch.float32)[None]
    post = torch.tensor(image_affine(0.25, (0, 4), False, 0.0, (32, 64)), dtype=torch.float32).expand(1, 2, 3, 3)
    if frames == 1:
        return torch.randn(1, 2, 3, 32, 64), intrinsics, cam2ego, post, torch.eye(3)[None]
    moves = torch.eye(4).repeat(frames, 1, 1)
    moves[:, 0, 3] = -torch.arange(frames, dtype=torch.float32)
    return (torch.randn(1, frames, 2, 3, 32, 64), intrinsics, (moves[:, None] @ cam2ego)[None], post,
            torch.eye(3)[None])


def test_every_registered_network_is_checked():
    assert "ben2_base" in DISTINCT_NETWORKS and "mvanet" in DISTINCT_NETWORKS and "ben_base" not in DISTINCT_NETWORKS
    assert len(ALL_MODELS) - len(DISTINCT_NETWORKS) == 1


@pytest.mark.parametrize("name", DISTINCT_NETWORKS)
def test_forward_backward(name):
    occupancy = model_card(name).task == "occupancy"
    # occupancy models run on the synthetic grid here: Occ3D's 200 x 200 BEV costs ~30 s per step on 2 cores
    if name in ("dhd_s", "dhd_m", "dhd_l"):  # the published networks at a small input size
        model = visionzoo.create_model(name, input_size=(32, 64), grid=asdict(SYNTHETIC_GRID))
    elif occupancy:
        model = visionzoo.create_model(name, grid=asdict(SYNTHETIC_GRID), depth_bins=(1.0, 29.0, 1.0))
    else:
        model = visionzoo.create_model(name)
    model.train()
    spatial = (3, 5) if hasattr(model, "num_upsamples") else SIZE[2:]  # decoders grow their input 32x
    size = SIZES.get(name, (SIZE[0], model_card(name).preprocessing.input_size[0], *spatial))
    frames = model_card(name).preprocessing.frames
    outputs = named_outputs(model(*occupancy_inputs(frames)) if occupancy else model(torch.randn(size)))
    assert {k: tuple(o.shape) for k, o in outputs.items()} == expected_shapes(name, model, size)
    assert all(torch.isfinite(o).all() for o in outputs.values())
    sum(o.float().square().mean() for o in outputs.values()).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_grad = [n for n, p in trainable if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
