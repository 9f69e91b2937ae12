"""DHD-M and DHD-L as published: the official state-dict layout, parity with the official modules, the stereo cost
volume, mmdet's Swin layout.

The golden numbers come from the official DHD code (yanzq95/DHD at 0684424) filled with the deterministic weights
of ``tests/helpers/deterministic.py``; ``tests/golden/make_dhd_stereo_golden.py`` says how to regenerate them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

import visionzoo
from tests.golden.make_dhd_stereo_golden import INPUT_SIZE, stereo_inputs
from tests.golden.make_dhd_s_golden import profiles
from tests.helpers.deterministic import deterministic_state_dict, golden_input
from visionzoo.data.synthetic_occ3d import rig_example
from visionzoo.geometry import SYNTHETIC_GRID
from visionzoo.models import model_card
from visionzoo.models.dhd import StereoDHD
from visionzoo.models.dhd.stereo import cost_volume_grid, current_to_previous_sensor, stereo_cost_volume
from visionzoo.models.dhd.view import frustum
from visionzoo.models.swin import MMDetSwin, PatchMerging

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


#: Per published model: state-dict entries and parameters (the official configs built, tests/golden/*_keys.json).
SIZES = {"dhd_m": (1083, 198_730_375), "dhd_l": (1101, 280_250_893)}


@pytest.fixture(scope="module", params=sorted(SIZES))
def name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def golden(name) -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN / f"{name}.npz"))


@pytest.fixture(scope="module")
def model(name) -> StereoDHD:
    net = visionzoo.create_model(name, input_size=INPUT_SIZE).eval()
    net.load_state_dict(deterministic_state_dict(net.state_dict()))
    return net


def test_state_dict_has_the_official_names_shapes_and_dtypes(name, model):
    official = json.loads((GOLDEN / f"{name}_keys.json").read_text())
    own = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert own == official and len(own) == SIZES[name][0]
    assert sum(p.numel() for p in model.parameters()) == SIZES[name][1]
    assert model_card(name).preprocessing.frames == model.fused_frames + 1 == 3  # key, previous, its stereo partner


def test_stereo_lifting_of_both_frames_equals_the_official_modules(model, golden):
    """One camera, three frames with differing ego poses, an image flip and a BEV flip: per lifted frame the
    stereo depth distribution, the height map and the BEV and band volumes of the official view transform."""
    with torch.no_grad():
        lifted = model.lift_frames(golden_input((1, 3, 1, 3, *INPUT_SIZE), seed=7), **stereo_inputs(("CAM_FRONT",)))
    assert len(lifted) == 2
    for t, (bev, bands, depth, height) in enumerate(lifted):
        np.testing.assert_allclose(depth.softmax(1)[:, :, ::2, ::2].numpy(), golden[f"frame{t}_depth_sub"],
                                   atol=1e-5)
        assert np.array_equal(height.argmax(dim=1).numpy(), golden[f"frame{t}_height_argmax"])
        for part, volume in (("bev", bev), ("volume", torch.cat(bands, dim=1))):
            rows, cols, total = profiles(volume)
            scale = np.abs(golden[f"frame{t}_{part}_rows"]).max()
            assert scale > 0, f"frame {t} {part}: the camera's points must land in the grid"
            # DHD-L's Swin computes attention with PyTorch's fused kernel, mmdet's step by step: features agree
            # to ~1e-6 relative (end to end 4.5e-7), so its sums get a wider band than DHD-M's exact ResNet
            tolerance = 1e-5 if model.img_backbone.__class__.__name__ == "ResNet50Features" else 5e-5
            np.testing.assert_allclose(rows, golden[f"frame{t}_{part}_rows"], atol=tolerance * scale, rtol=0)
            np.testing.assert_allclose(cols, golden[f"frame{t}_{part}_cols"], atol=tolerance * scale, rtol=0)
            np.testing.assert_allclose(total, golden[f"frame{t}_{part}_total"], rtol=tolerance)


def test_frame_fusion_and_bev_side_equal_the_official_modules(model, golden):
    """Pre-process nets, the two frames side by side per layer, the BEV encoder (DHD-M: UNet; DHD-L: ResNet +
    FPN-LSS), band UNets, SFA, head on a 32 x 32 crop."""
    bevs = [golden_input((1, 64, 32, 32), seed=seed) for seed in (11, 12)]
    volumes = [[golden_input((1, 1024, 32, 32), seed=seed)] for seed in (13, 14)]
    with torch.no_grad():
        logits = model.decode(*model.fuse(bevs, volumes))
    assert logits.shape == (1, 32, 32, 16, 18)
    np.testing.assert_allclose(logits[:, ::8, ::8].numpy(), golden["bev_logits_sub"], atol=1e-5, rtol=0)
    np.testing.assert_allclose([logits.mean().item(), logits.std().item()], golden["bev_logits_stats"], rtol=1e-5)


def test_mmdet_swin_state_dict_round_trips_through_the_zoo_names():
    """DHD-L's backbone stores mmdet's names and loads them back into the zoo's Swin blocks."""
    swin = MMDetSwin(embed_dim=8, depths=(2, 2), num_heads=(1, 2), window=4, out_indices=(1,), stereo=True)
    state = swin.state_dict()
    assert list(state)[:3] == ["patch_embed.projection.weight", "patch_embed.projection.bias",
                               "patch_embed.norm.weight"]
    assert "layers.0.blocks.0.attn.qkv.weight" not in state
    assert {"stages.0.blocks.1.attn.w_msa.relative_position_index", "stages.0.blocks.0.ffn.layers.0.0.weight",
            "stages.0.blocks.0.ffn.layers.1.bias", "stages.0.downsample.norm.weight", "norm1.weight"} <= set(state)
    other = MMDetSwin(embed_dim=8, depths=(2, 2), num_heads=(1, 2), window=4, out_indices=(1,), stereo=True)
    other.load_state_dict(deterministic_state_dict(state))
    torch.testing.assert_close(other.layers[0].blocks[0].mlp.fc1.weight,
                               deterministic_state_dict(state)["stages.0.blocks.0.ffn.layers.0.0.weight"])
    x = torch.randn(1, 3, 32, 48)
    stereo, deep = other(x)
    assert stereo.shape == (1, 8, 8, 12) and deep.shape == (1, 16, 4, 6) and other.channels == [8, 16]
    torch.testing.assert_close(other.stereo_features(x), stereo)


def test_mmdet_patch_merging_concatenates_in_unfold_order():
    """mmdet's PatchMerging gathers each 2 x 2 block with nn.Unfold: channel c * 4 + 2 * row + column."""
    merge = PatchMerging(3, unfold_order=True)
    x = torch.randn(1, 4, 6, 3)
    unfolded = torch.nn.functional.unfold(x.permute(0, 3, 1, 2), 2, stride=2).transpose(1, 2).view(1, 2, 3, 12)
    with torch.no_grad():
        torch.testing.assert_close(merge(x), merge.reduction(merge.norm(unfolded)))


def test_cost_volume_finds_the_depth_of_a_plane_seen_from_a_sideways_step():
    """A fronto-parallel textured plane at 12.5 m; the camera stepped 1 m sideways since the previous frame, with
    the focal length chosen so the plane moves exactly 2 stride-4 feature columns: the cheapest bin is 12.5 m
    wherever the match lies inside the previous image."""
    height, width, stride = 32, 128, 4
    h, w = height // stride, width // stride
    column = (width - 1) / (w - 1)  # input pixels between frustum columns (linspace positions)
    focal = 12.5 * 2 * column  # shift = focal * baseline / depth = 2 columns
    intrinsics = torch.tensor([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1.0]])[None, None]
    current_to_previous = torch.eye(4)
    current_to_previous[0, 3] = 1.0  # a point 1 m further right in the previous camera
    bins = (1.0, 45.0, 0.5)
    grid = cost_volume_grid(frustum((height, width), stride, bins), current_to_previous[None, None], intrinsics,
                            torch.eye(3)[None, None], (height, width))
    texture = torch.randn(1, 8, h, w, generator=torch.Generator().manual_seed(0))
    previous = torch.zeros_like(texture)
    previous[..., 2:] = texture[..., :-2]  # what the current camera sees at column k, the previous one saw at k + 2
    volume = stereo_cost_volume(previous, texture, grid, bias=5.0)
    assert volume.shape == (1, 88, h, w)
    torch.testing.assert_close(volume.sum(dim=1), torch.ones(1, h, w))
    best = volume.argmax(dim=1)[0, :, : w - 2]  # columns whose match is inside the previous image
    assert (best == int((12.5 - 1.0) / 0.5)).all()


def test_current_to_previous_sensor_is_the_relative_camera_motion():
    """A camera 1 m ahead of the car's origin; the car moved 2 m forward since the previous frame: seen from the
    previous camera, the current camera is 2 m further along its axis (x of the ego = z of a front camera)."""
    front = torch.tensor([[0.0, 0, 1, 1], [-1, 0, 0, 0], [0, -1, 0, 1.5], [0, 0, 0, 1]])  # camera -> ego
    previous_ego = torch.eye(4)
    previous_ego[0, 3] = -2.0  # the previous ego in the key ego frame
    cam2key = torch.stack([front, previous_ego @ front])[None, :, None]  # (B=1, T=2, N=1, 4, 4)
    motion = current_to_previous_sensor(cam2key)[0, 0, 0]
    expected = torch.eye(4)
    expected[2, 3] = 2.0
    torch.testing.assert_close(motion, expected)


def test_stereo_model_checks_its_frames(model):
    inputs = stereo_inputs(("CAM_FRONT",))
    with pytest.raises(ValueError, match="reads 3 frames"):
        model.lift_frames(torch.zeros(1, 2, 1, 3, *INPUT_SIZE), inputs["intrinsics"], inputs["cam2ego"][:, :2],
                          inputs["post"], inputs["bda"])


def test_dhd_m_under_bfloat16_autocast_agrees_with_float32():
    """Mixed precision as the trainer offers it: the geometry (lifting, stereo sampling) and the cost volume stay in
    float32, the nets run in bfloat16 (the deformable convolution in float32)."""
    net = visionzoo.create_model("dhd_m", input_size=(32, 64), grid=asdict(SYNTHETIC_GRID)).eval()
    net.load_state_dict(deterministic_state_dict(net.state_dict()))
    torch.manual_seed(0)
    inputs = rig_example((32, 64), 3)
    with torch.no_grad():
        reference = net(*inputs)["logits"].argmax(-1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(*inputs)["logits"]
    assert mixed.dtype == torch.bfloat16 and torch.isfinite(mixed.float()).all()
    assert (mixed.float().argmax(-1) == reference).float().mean() > 0.95
