"""DHD parts: voxel pooling against a naive loop, index caching, MGHS sub-grids, SFA, head, UNet depths, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visionzoo
from visionzoo.data.synthetic_occ3d import camera_rig
from visionzoo.geometry import SYNTHETIC_GRID, OccupancyGrid, image_affine
from visionzoo.models.dhd.parts import ChannelToHeightHead, SynergisticFeatureAggregation, UNet
from visionzoo.models.dhd.view import (VoxelIndexCache, collapsed, frustum, lift_frustum, pool_to_bev,
                                       voxel_indices)

SMALL = OccupancyGrid((-2.0, 2.0), (-1.0, 1.0), (-1.0, 1.0), (1.0, 0.5, 1.0))  # 4 x 4 x 2


def naive_pool(points, depth, features, grid, collapse_z):
    """One point at a time: add depth x feature to the voxel holding the point."""
    batch, cams, bins, h, w = depth.shape
    X, Y, Z = grid.shape
    out = torch.zeros(batch, X, Y, 1 if collapse_z else Z, features.shape[2], dtype=torch.float64)
    for b in range(batch):
        for n in range(cams):
            for d in range(bins):
                for i in range(h):
                    for j in range(w):
                        p = points[b, n, d, i, j]
                        cell = [int(np.floor((float(p[a]) - grid.lower[a]) / grid.voxel[a])) for a in range(3)]
                        if all(0 <= c < s for c, s in zip(cell, grid.shape)):
                            z = 0 if collapse_z else cell[2]
                            out[b, cell[0], cell[1], z] += depth[b, n, d, i, j] * features[b, n, :, i, j]
    return out


@pytest.mark.parametrize("collapse_z", [False, True])
def test_voxel_pooling_equals_the_naive_reference(collapse_z):
    generator = torch.Generator().manual_seed(0)
    batch, cams, bins, h, w, channels = 2, 2, 3, 3, 4, 5
    points = torch.rand(batch, cams, bins, h, w, 3, generator=generator, dtype=torch.float64) * 6 - 3
    depth = torch.rand(batch, cams, bins, h, w, generator=generator, dtype=torch.float64).softmax(dim=2)
    features = torch.randn(batch, cams, channels, h, w, generator=generator, dtype=torch.float64)
    grid = collapsed(SMALL) if collapse_z else SMALL
    kept, index = voxel_indices(points, grid, rounding="floor")
    X, Y, layers = grid.shape
    pooled = pool_to_bev(depth, features, kept, index, grid)  # (B, Z * C, Y, X), z-major channels
    assert pooled.shape == (batch, layers * channels, Y, X)
    pooled = pooled.view(batch, layers, channels, Y, X).permute(0, 4, 3, 1, 2)  # (B, X, Y, Z, C)
    expected = naive_pool(points, depth, features, SMALL, collapse_z)
    assert 0 < len(kept) < points[..., 0].numel()  # some points fall outside the grid
    assert torch.allclose(pooled, expected)


def test_index_cache_reuses_indices_for_the_same_geometry():
    cache, calls = VoxelIndexCache(), []

    def compute():
        calls.append(1)
        return (torch.tensor([len(calls)]),)

    key = torch.arange(6.0)
    first = cache.get(key, compute)
    assert cache.get(key.clone(), compute) is first and len(calls) == 1
    assert int(cache.get(key + 1, compute)[0]) == 2


def test_frustum_lift_hits_the_pixel_ray_at_each_depth():
    cam2ego, intrinsics, _ = camera_rig(0.16)["CAM_FRONT"]
    post = image_affine(0.5, (0, 8), False, 0.0, (64, 128))
    points = frustum((64, 128), 16, (1.0, 5.0, 1.0), pixels="centres")
    assert points.shape == (4, 4, 8, 3)
    assert points[2, 1, 3].tolist() == [3 * 16 + 7.5, 16 + 7.5, 3.0]
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)[None, None]  # noqa: E731
    ego = lift_frustum(points, as_t(intrinsics), as_t(cam2ego), as_t(post), torch.eye(3)[None])
    assert ego.shape == (1, 1, 4, 4, 8, 3)
    # the same pixel at depths 1..4 m: points on one ray from the camera centre, 1 m apart along its axis
    ray = ego[0, 0, :, 1, 3] - torch.as_tensor(cam2ego[:3, 3], dtype=torch.float32)
    forward = torch.as_tensor(cam2ego[:3, 2], dtype=torch.float32)  # camera z axis in the ego frame
    assert (ray @ forward).tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=1e-5)
    direction = ray / ray.norm(dim=1, keepdim=True)
    assert torch.allclose(direction, direction[:1].expand_as(direction), atol=1e-6)


def test_mghs_bands_and_their_encoders():
    model = visionzoo.create_model("dhd_tiny")
    view = model.img_view_transformer
    assert [band.shape for band in view.bands] == [(50, 50, 4), (50, 50, 4), (50, 50, 8)]
    assert [band.z_range for band in view.bands] == [(-1.0, 0.6), (0.6, 2.2), (2.2, 5.4)]
    assert view.bev_grid.shape == (50, 50, 1)
    # each band's UNet sees its layers folded into channels: context x layers
    encoders = [getattr(model, f"img_voxel_encoder{i}") for i in range(3)]
    assert [e.inc.double_conv[0].in_channels for e in encoders] == [16 * 4, 16 * 4, 16 * 8]


def test_sfa_head_and_unet_shapes():
    sfa = SynergisticFeatureAggregation(64, 48)  # F_db and F_hr of 32 channels each
    assert sfa(torch.randn(2, 64, 10, 12)).shape == (2, 48, 10, 12)
    head = ChannelToHeightHead(48, layers=16, classes=18)
    assert head(torch.randn(2, 48, 10, 12)).shape == (2, 12, 10, 16, 18)  # (B, C, Y, X) -> (B, X, Y, Z, classes)
    two_levels = UNet(24, 8, widths=(16, 32))
    assert [name for name, _ in two_levels.named_children()] == ["inc", "down1", "up1", "outc"]
    assert two_levels(torch.randn(1, 24, 25, 13)).shape == (1, 8, 25, 13)  # odd sizes padded back
    with pytest.raises(ValueError, match="each twice the one before"):
        UNet(24, 8, widths=(16, 24))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="summing to bev_channels 32"):
        visionzoo.create_model("dhd_tiny", subspace_channels=(8, 8, 8))
    with pytest.raises(ValueError, match="layer boundary"):
        visionzoo.create_model("dhd_tiny", mask_range=(-1.0, 0.5, 2.2, 5.4))
    with pytest.raises(ValueError, match="must span the grid's z range"):
        visionzoo.create_model("dhd_tiny", mask_range=(-1.0, 0.6, 2.2, 5.0))


def test_tiny_model_forward_shapes_and_geometry_cache():
    model = visionzoo.create_model("dhd_tiny").eval()
    rig = camera_rig(0.16)
    cams = ("CAM_FRONT", "CAM_BACK")
    intrinsics = torch.tensor(np.stack([rig[c][1] for c in cams]), dtype=torch.float32)[None]
    cam2ego = torch.tensor(np.stack([rig[c][0] for c in cams]), dtype=torch.float32)[None]
    post = torch.tensor(image_affine(0.25, (0, 4), False, 0.0, (32, 64)), dtype=torch.float32).expand(1, 2, 3, 3)
    images = torch.randn(1, 2, 3, 32, 64)
    with torch.no_grad():
        out = model(images, intrinsics, cam2ego, post, torch.eye(3)[None])
        cached = model.img_view_transformer._index_cache.value
        model(images, intrinsics, cam2ego, post, torch.eye(3)[None])
    assert model.img_view_transformer._index_cache.value is cached
    assert out["logits"].shape == (1, 50, 50, 16, 18)
    assert out["depth"].shape == (1, 2, 28, 2, 4) and out["height"].shape == (1, 2, 65, 2, 4)
    assert SYNTHETIC_GRID.shape == model.grid.shape
