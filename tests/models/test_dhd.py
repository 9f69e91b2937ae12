"""DHD parts: voxel pooling against a naive loop, index caching, MGHS masks and sub-grids, SFA, head, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import visionzoo
from visionzoo.data.synthetic_occ3d import camera_rig
from visionzoo.geometry import SYNTHETIC_GRID, OccupancyGrid, image_affine
from visionzoo.models.dhd import SFA, ChannelToHeightHead, height_masks
from visionzoo.models.voxel_pooling import (VoxelIndexCache, frustum, lift_points, pool_voxels, voxel_indices)

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
    kept, index = voxel_indices(points, SMALL, collapse_z=collapse_z)
    X, Y, Z = SMALL.shape
    layers = 1 if collapse_z else Z
    pooled = pool_voxels(depth, features, kept, index, batch * X * Y * layers).view(batch, X, Y, layers, channels)
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
    points = frustum((64, 128), 16, (1.0, 5.0, 1.0))
    assert points.shape == (4, 4, 8, 3)
    assert points[2, 1, 3].tolist() == [3 * 16 + 7.5, 16 + 7.5, 3.0]
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)[None, None]  # noqa: E731
    ego = lift_points(points, as_t(intrinsics), as_t(cam2ego), as_t(post), torch.eye(3)[None])
    assert ego.shape == (1, 1, 4, 4, 8, 3)
    # the same pixel at depths 1..4 m: points on one ray from the camera centre, 1 m apart along its axis
    ray = ego[0, 0, :, 1, 3] - torch.as_tensor(cam2ego[:3, 3], dtype=torch.float32)
    forward = torch.as_tensor(cam2ego[:3, 2], dtype=torch.float32)  # camera z axis in the ego frame
    assert (ray @ forward).tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=1e-5)
    direction = ray / ray.norm(dim=1, keepdim=True)
    assert torch.allclose(direction, direction[:1].expand_as(direction), atol=1e-6)


def test_mghs_masks_and_sub_grids():
    heights = torch.tensor([-1.0, -0.5, 0.59, 0.6, 2.19, 2.2, 5.4, 5.5]).view(1, 1, 1, 8)
    masks = height_masks(heights, (-1.0, 0.6, 2.2, 5.4))
    assert masks.shape == (1, 3, 1, 8)
    assert masks[0, :, 0].int().tolist() == [[1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0],
                                              [0, 0, 0, 0, 0, 1, 1, 0]]
    model = visionzoo.create_model("dhd_tiny")
    assert [sub.shape for sub in model.subgrids] == [(50, 50, 4), (50, 50, 4), (50, 50, 8)]
    assert [sub.z_range for sub in model.subgrids] == [(-1.0, 0.6), (0.6, 2.2), (2.2, 5.4)]
    # each subspace UNet sees its layers folded into channels: context x layers
    assert [e.enc[0][0].in_channels for e in model.subspace_encoders] == [16 * 4, 16 * 4, 16 * 8]


def test_sfa_and_head_shapes():
    sfa = SFA(32, 48)
    f_db, f_hr = torch.randn(2, 32, 10, 12), torch.randn(2, 32, 10, 12)
    assert sfa(f_db, f_hr).shape == (2, 48, 10, 12)
    head = ChannelToHeightHead(48, layers=16, num_classes=18)
    assert head(torch.randn(2, 48, 10, 12)).shape == (2, 10, 12, 16, 18)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="must sum to bev_channels"):
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
        cached = model._index_cache.value
        model(images, intrinsics, cam2ego, post, torch.eye(3)[None])
    assert model._index_cache.value is cached
    assert out["logits"].shape == (1, 50, 50, 16, 18)
    assert out["depth"].shape == (1, 2, 28, 2, 4) and out["height"].shape == (1, 2, 65, 2, 4)
    assert SYNTHETIC_GRID.shape == model.grid.shape
