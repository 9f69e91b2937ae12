"""DHD-M as published: the official state-dict layout, parity with the official modules, the stereo cost volume.

The golden numbers come from the official DHD code (yanzq95/DHD at 0684424) filled with the deterministic weights
of ``tests/helpers/deterministic.py``; ``tests/golden/make_dhd_m_golden.py`` says how to regenerate them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import visionzoo
from tests.golden.make_dhd_m_golden import INPUT_SIZE, stereo_inputs
from tests.golden.make_dhd_s_golden import profiles
from tests.helpers.deterministic import deterministic_state_dict, golden_input
from visionzoo.models import model_card
from visionzoo.models.dhd import StereoDHD
from visionzoo.models.dhd.stereo import cost_volume_grid, current_to_previous_sensor, stereo_cost_volume
from visionzoo.models.dhd.view import frustum

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN / "dhd_m.npz"))


@pytest.fixture(scope="module")
def model() -> StereoDHD:
    net = visionzoo.create_model("dhd_m", input_size=INPUT_SIZE).eval()
    net.load_state_dict(deterministic_state_dict(net.state_dict()))
    return net


def test_state_dict_has_the_official_names_shapes_and_dtypes():
    official = json.loads((GOLDEN / "dhd_m_keys.json").read_text())
    net = visionzoo.create_model("dhd_m")
    own = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]
    assert own == official and len(own) == 1083
    assert sum(p.numel() for p in net.parameters()) == 198_730_375
    assert model_card("dhd_m").preprocessing.frames == net.frames + 1 == 3  # key, previous, its stereo partner


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
        for name, volume in (("bev", bev), ("volume", torch.cat(bands, dim=1))):
            rows, cols, total = profiles(volume)
            scale = np.abs(golden[f"frame{t}_{name}_rows"]).max()
            assert scale > 0, f"frame {t} {name}: the camera's points must land in the grid"
            np.testing.assert_allclose(rows, golden[f"frame{t}_{name}_rows"], atol=1e-5 * scale, rtol=0)
            np.testing.assert_allclose(cols, golden[f"frame{t}_{name}_cols"], atol=1e-5 * scale, rtol=0)
            np.testing.assert_allclose(total, golden[f"frame{t}_{name}_total"], rtol=1e-5)


def test_frame_fusion_and_bev_side_equal_the_official_modules(model, golden):
    """Pre-process nets, the two frames side by side per layer, UNet BEV encoder, band UNets, SFA, head on a
    32 x 32 crop."""
    bevs = [golden_input((1, 64, 32, 32), seed=seed) for seed in (11, 12)]
    volumes = [[golden_input((1, 1024, 32, 32), seed=seed)] for seed in (13, 14)]
    with torch.no_grad():
        logits = model.decode(*model.fuse(bevs, volumes))
    assert logits.shape == (1, 32, 32, 16, 18)
    np.testing.assert_allclose(logits[:, ::8, ::8].numpy(), golden["bev_logits_sub"], atol=1e-5, rtol=0)
    np.testing.assert_allclose([logits.mean().item(), logits.std().item()], golden["bev_logits_stats"], rtol=1e-5)


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
