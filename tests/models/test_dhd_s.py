"""DHD-S as published: the official state-dict layout, parity with the official modules, the official geometry.

The golden numbers come from the official DHD code (yanzq95/DHD at 0684424) filled with the deterministic weights
of ``tests/helpers/deterministic.py``; ``tests/golden/make_dhd_s_golden.py`` says how to regenerate them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import visionzoo
from tests.golden.make_dhd_s_golden import profiles, rig_inputs
from tests.helpers.deterministic import deterministic_state_dict, golden_input
from visionzoo.geometry import OCC3D_GRID, OccupancyGrid
from visionzoo.models.dhd import DHD, bevdet_input
from visionzoo.models.dhd.parts import DeformableConv2d, camera_vector
from visionzoo.models.dhd.view import MaskGuidedHeightSampling, frustum, pool_to_bev, voxel_indices

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CAMERAS = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN / "dhd_s.npz"))


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return deterministic_state_dict(visionzoo.create_model("dhd_s").state_dict())


@pytest.fixture(scope="module")
def model(state) -> DHD:
    net = visionzoo.create_model("dhd_s").eval()
    net.load_state_dict(state)
    return net


def test_state_dict_has_the_official_names_shapes_and_dtypes():
    official = json.loads((GOLDEN / "dhd_s_keys.json").read_text())
    net = visionzoo.create_model("dhd_s")
    own = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in net.state_dict().items()]
    assert own == official and len(own) == 917
    assert sum(p.numel() for p in net.parameters()) == 146_690_869


def test_image_side_equals_the_official_modules(model, golden):
    """One camera: image encoder, depth and height nets, lift-splat into the BEV and the three MGHS bands."""
    geometry = rig_inputs(1, ("CAM_FRONT",))
    features = model.img_neck(model.img_backbone(golden_input((1, 1, 3, 256, 704), seed=2).flatten(0, 1)))
    with torch.no_grad():
        bev, bands, depth, height = model.img_view_transformer(features[None], **geometry)
    np.testing.assert_allclose(depth.softmax(1)[:, :, ::4, ::4].numpy(), golden["view_depth_sub"], atol=1e-6)
    assert np.array_equal(height.argmax(dim=1).numpy(), golden["view_height_argmax"])
    for name, volume in zip(("bev", "low", "middle", "high"), (bev, *bands)):
        rows, cols, total = profiles(volume)
        scale = np.abs(golden[f"view_{name}_rows"]).max()
        assert scale > 0, f"{name}: the camera's points must land in the grid for the comparison to mean anything"
        np.testing.assert_allclose(rows, golden[f"view_{name}_rows"], atol=1e-5 * scale, rtol=0)
        np.testing.assert_allclose(cols, golden[f"view_{name}_cols"], atol=1e-5 * scale, rtol=0)
        np.testing.assert_allclose(total, golden[f"view_{name}_total"], rtol=1e-5)


def test_bev_side_equals_the_official_modules(model, golden):
    """BEV encoder, the three UNets, SFA and the head on a 32 x 32 crop (the modules are fully convolutional)."""
    bev, *bands = (golden_input(shape, seed=seed) for seed, shape in
                   zip((3, 4, 5, 6), ((1, 64, 32, 32), (1, 256, 32, 32), (1, 256, 32, 32), (1, 512, 32, 32))))
    with torch.no_grad():
        f_db = model.img_bev_encoder_neck(model.img_bev_encoder_backbone(bev))
        encoders = (model.img_voxel_encoder0, model.img_voxel_encoder1, model.img_voxel_encoder2)
        f_hr = [encoder(band) for encoder, band in zip(encoders, bands)]
        logits = model.occ_head(model.mix(torch.cat([f_db, *f_hr], dim=1)))
    assert logits.shape == (1, 32, 32, 16, 18)
    np.testing.assert_allclose(logits[:, ::8, ::8].numpy(), golden["bev_logits_sub"], atol=1e-5, rtol=0)
    np.testing.assert_allclose([logits.mean().item(), logits.std().item()], golden["bev_logits_stats"], rtol=1e-5)


def test_end_to_end_equals_the_official_model(model, golden):
    with torch.no_grad():
        logits = model.forward_official(golden_input((1, 6, 3, 256, 704), seed=1), **rig_inputs(1, CAMERAS))["logits"]
    assert logits.shape == (1, 200, 200, 16, 18)
    np.testing.assert_allclose(logits[:, ::25, ::25].numpy(), golden["full_logits_sub"], atol=1e-5, rtol=0)
    assert np.array_equal(logits.argmax(-1)[:, ::10, ::10].numpy().astype(np.uint8), golden["full_labels_sub"])
    np.testing.assert_allclose([logits.mean().item(), logits.std().item()], golden["full_logits_stats"], rtol=1e-5)


def test_images_are_handed_over_as_the_official_pipeline_normalises_them():
    """mmcv's imnormalize(to_rgb=True) on Pillow's RGB array: BGR channels with the RGB mean / std."""
    pixel = np.array([200.0, 100.0, 30.0])  # R, G, B
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    zoo_input = torch.tensor((pixel - mean) / std, dtype=torch.float32).view(1, 3, 1, 1)
    expected = (pixel[::-1] - mean) / std  # what the published weights were trained on
    np.testing.assert_allclose(bevdet_input(zoo_input).flatten().numpy(), expected, rtol=1e-6)


def test_frustum_uses_linspace_pixel_positions_not_centres():
    points = frustum((256, 704), 16, (1.0, 45.0, 1.0))
    assert points.shape == (44, 16, 44, 3)
    assert points[0, 0, :, 0].tolist()[:2] == pytest.approx([0.0, 703 / 43])  # u = 0, 16.35 ... 703
    assert points[0, -1, -1, :2].tolist() == [703.0, 255.0]
    assert points[:, 0, 0, 2].tolist() == [float(d) for d in range(1, 45)]


def test_voxel_index_truncates_toward_zero_and_folds_z_first():
    grid = OccupancyGrid((-2.0, 2.0), (-2.0, 2.0), (0.0, 2.0), (1.0, 1.0, 1.0))  # 4 x 4 x 2 cells
    points = torch.tensor([[[-2.5, 0.5, 0.5],     # x cell -0.5 -> 0 by truncation (floor would drop it)
                            [-3.5, 0.5, 0.5],     # -1.5 -> -1: outside
                            [1.5, -1.5, 1.5],     # cell (3, 0, 1)
                            [0.5, 0.5, 2.0]]])    # z cell 2 = the size: outside (upper bound half-open)
    kept, index = voxel_indices(points, grid)
    assert kept.tolist() == [0, 2]
    assert index.tolist() == [(0 * 4 + 2) * 4 + 0, (1 * 4 + 0) * 4 + 3]  # ((z * Y) + y) * X + x
    depth = torch.ones(1, 1, 1, 1, 4)  # four points, weight 1 each
    features = torch.tensor([1.0, 2.0]).view(1, 1, 2, 1, 1).expand(1, 1, 2, 1, 4)
    bev = pool_to_bev(depth, features, kept, index, grid)
    assert bev.shape == (1, 2 * 2, 4, 4)  # (B, Z * C, Y, X)
    assert bev[0, :, 2, 0].tolist() == [1.0, 2.0, 0.0, 0.0] and bev[0, :, 0, 3].tolist() == [0.0, 0.0, 1.0, 2.0]


def test_height_bands_are_half_open_and_the_top_bin_is_outside():
    view = MaskGuidedHeightSampling(OCC3D_GRID).eval()
    assert view.bands[2].z_range == (2.2, 5.4) and view.bands[2].voxel[2] == 0.4
    assert view.bev_grid.z_range == (-1.0, 5.4) and view.bev_grid.voxel[2] == 6.4
    with torch.no_grad():
        view.height_net.depth_conv[-1].weight.zero_()
        for bin_index, expected in ((0, 0), (15, 0), (16, 1), (31, 1), (32, 2), (63, 2), (64, None)):
            view.height_net.depth_conv[-1].bias.copy_(torch.nn.functional.one_hot(torch.tensor(bin_index), 65) * 10.0)
            geometry = rig_inputs(1, ("CAM_FRONT",))
            _, bands, _, _ = view(torch.ones(1, 1, 256, 16, 44), **geometry)
            filled = [bool(band.abs().sum() > 0) for band in bands]  # bin 16 is 0.6 m, 32 is 2.2 m, 64 is 5.4 m
            assert filled == [i == expected for i in range(3)], (bin_index, filled)


def test_camera_vector_is_in_the_official_order():
    intrinsics = torch.tensor([[1000.0, 0, 600], [0, 1100.0, 400], [0, 0, 1]]).view(1, 1, 3, 3)
    post = torch.tensor([[0.5, 0.1, -7.0], [0.2, 0.6, -140.0], [0, 0, 1]]).view(1, 1, 3, 3)
    bda = torch.tensor([[-1.0, 0.3, 0], [0.4, 1.0, 0], [0, 0, 0.9]]).view(1, 3, 3)
    cam2ego = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    vector = camera_vector(intrinsics, post, bda, cam2ego)[0, 0].tolist()
    assert vector[:15] == pytest.approx([1000, 1100, 600, 400, 0.5, 0.1, -7, 0.2, 0.6, -140, -1, 0.3, 0.4, 1, 0.9])
    assert vector[15:] == list(range(12))


def test_voxel_indices_are_cached_while_the_geometry_stays():
    view = MaskGuidedHeightSampling(OCC3D_GRID)
    geometry = rig_inputs(1, ("CAM_FRONT",))
    first = view.voxel_indices(**geometry)
    assert view.voxel_indices(**geometry) is first
    geometry["bda"] = torch.eye(3)[None]
    assert view.voxel_indices(**geometry) is not first


def test_released_checkpoint_forms_load_without_unpickling_code(state, tmp_path):
    """An mmcv training checkpoint (meta, ``module.`` keys, optimizer) and the EMA hook's file load as they are."""
    meta = {"mmcv_version": "1.5.0", "CLASSES": ("car", "truck"), "config": "model = dict(type='DHD')",
            "epoch": 24, "iter": 84000, "hook_msgs": {"last_ckpt": "work_dirs/DHD-S/epoch_24.pth"}}
    torch.save({"meta": meta, "state_dict": {f"module.{k}": v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4}]}}, tmp_path / "DHD-S.pth")
    torch.save({"epoch": 23, "state_dict": state, "updates": 10560}, tmp_path / "epoch_24_ema.pth")
    for name in ("DHD-S.pth", "epoch_24_ema.pth"):
        loaded = visionzoo.create_model("dhd_s", pretrained=str(tmp_path / name)).state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    torch.save({"meta": {"best_score": np.float64(36.5)}, "state_dict": {"a": torch.zeros(1)}}, tmp_path / "np.pth")
    with pytest.raises(visionzoo.errors.WeightsError, match=r"refused to load .*np.pth: it holds pickled objects "
                                                            r"beyond tensors.*keep only its weights once: python -c"):
        visionzoo.create_model("dhd_s", pretrained=str(tmp_path / "np.pth"))


def test_deformable_conv_runs_in_float32_under_bfloat16():
    """torchvision's deform_conv2d has no bfloat16 kernel: under autocast (or for a bfloat16 input) the module runs
    it in float32 instead of stopping with a dtype error."""
    torch.manual_seed(0)
    layer = DeformableConv2d(16).eval()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.1)  # offsets that move the samples
    x = torch.randn(2, 16, 12, 20)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = layer(x)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference, atol=0.05, rtol=0)  # the offsets come from a bfloat16 conv
    half = layer.to(torch.bfloat16)(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), reference, atol=0.05, rtol=0)


def test_end_to_end_under_bfloat16_autocast_agrees_with_float32(model, golden):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model.forward_official(golden_input((1, 6, 3, 256, 704), seed=1), **rig_inputs(1, CAMERAS))["logits"]
    labels = logits.float().argmax(-1)[:, ::10, ::10].numpy().astype(np.uint8)
    assert (labels == golden["full_labels_sub"]).mean() > 0.95  # 0.986 measured
