"""Occ3D reader, geometry and synthetic worlds: projections by hand, LiDAR maps, layout, errors on broken samples."""

from __future__ import annotations

import math
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from visionzoo.constants import IMAGENET_MEAN, IMAGENET_STD, NUSCENES_CAMERAS, OCC3D_FREE
from visionzoo.data.occ3d import (ImageAugment, Occ3DDataset, collate_occ3d, lidar_depth_height, load_infos,
                                  occ3d_records, parse_info, read_labels, read_lidar_points)
from visionzoo.data.synthetic_occ3d import World, camera_rig, cast_rays
from visionzoo.errors import ConfigError, DataError
from visionzoo.geometry import (OCC3D_GRID, SYNTHETIC_GRID, OccupancyGrid, bev_flip_matrix, image_affine, lift_to_ego,
                                project_to_image, rigid, yaw_camera_rotation)
from visionzoo.models.dhd.view import voxel_indices
from visionzoo.preprocessing import Preprocessing

T = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731


def test_grid_shapes_and_sub_grids():
    assert OCC3D_GRID.shape == (200, 200, 16)
    assert SYNTHETIC_GRID.shape == (50, 50, 16)
    assert [SYNTHETIC_GRID.z_slice(a, b).shape[2] for a, b in ((-1.0, 0.6), (0.6, 2.2), (2.2, 5.4))] == [4, 4, 8]
    with pytest.raises(ValueError, match="whole number"):
        OccupancyGrid(*OCC3D_GRID.ranges, voxel=(0.3, 0.4, 0.4))
    with pytest.raises(ValueError, match="layer boundary"):
        SYNTHETIC_GRID.layer_index(0.5)


@pytest.mark.parametrize("camera", NUSCENES_CAMERAS)
def test_known_point_lands_on_expected_pixel_and_lifts_back_into_its_voxel(camera):
    cam2ego, intrinsics, _ = camera_rig(0.16)[camera]
    in_camera = np.array([1.0, 0.5, 10.0])  # 1 m right, 0.5 m down, 10 m ahead of the camera
    point = cam2ego[:3, :3] @ in_camera + cam2ego[:3, 3]
    f, cx, cy = intrinsics[0, 0], intrinsics[0, 2], intrinsics[1, 2]
    source_pixel = np.array([cx + f * 0.1, cy + f * 0.05])
    post = image_affine(0.5, (3, 5), False, 0.0, (64, 128))
    uv, depth = project_to_image(T(point)[None], T(intrinsics), T(cam2ego), T(post))
    assert uv[0].numpy() == pytest.approx(source_pixel * 0.5 - [3, 5], abs=1e-9)
    assert float(depth[0]) == pytest.approx(10.0)
    back = lift_to_ego(uv, depth, T(intrinsics), T(cam2ego), T(post))
    assert back[0].numpy() == pytest.approx(point, abs=1e-9)
    kept, index = voxel_indices(back[None].float(), SYNTHETIC_GRID, rounding="floor")
    cell = np.floor((point - np.array(SYNTHETIC_GRID.lower)) / np.array(SYNTHETIC_GRID.voxel)).astype(int)
    assert kept.tolist() == [0]
    assert int(index) == (cell[2] * 50 + cell[1]) * 50 + cell[0]  # ((z * Y) + y) * X + x


def test_flip_rotation_and_bev_flip_round_trip():
    cam2ego, intrinsics, _ = camera_rig(0.16)["CAM_FRONT_LEFT"]
    points = T([[8.0, 9.0, 1.0], [5.0, 6.0, 0.2], [12.0, 3.0, 2.5]])
    plain = image_affine(0.6, (10, 20), False, 0.0, (80, 160))
    flipped = image_affine(0.6, (10, 20), True, 0.0, (80, 160))
    uv, _ = project_to_image(points, T(intrinsics), T(cam2ego), T(plain))
    uv_flip, _ = project_to_image(points, T(intrinsics), T(cam2ego), T(flipped))
    assert uv_flip[:, 0].numpy() == pytest.approx(160 - uv[:, 0].numpy())
    assert uv_flip[:, 1].numpy() == pytest.approx(uv[:, 1].numpy())
    rotated = image_affine(0.6, (10, 20), True, 5.0, (80, 160))
    bda = T(bev_flip_matrix(True, False))
    mirrored = points * T([-1.0, 1.0, 1.0])
    uv_rot, depth = project_to_image(mirrored, T(intrinsics), T(cam2ego), T(rotated), bda)
    assert float((uv_rot - T([80, 40])).norm(dim=1)[0]) == pytest.approx(float((uv_flip - T([80, 40])).norm(dim=1)[0]))
    back = lift_to_ego(uv_rot, depth, T(intrinsics), T(cam2ego), T(rotated), bda)
    assert back.numpy() == pytest.approx(mirrored.numpy(), abs=1e-9)


def test_lidar_maps_take_the_nearest_point_per_pixel_and_the_minimum_per_cell():
    intrinsics = np.array([[10.0, 0, 8], [0, 10.0, 8], [0, 0, 1]])
    cam2ego = rigid(yaw_camera_rotation(0.0), (0.0, 0.0, 1.0))  # looking along +x from 1 m high
    # ego (x ahead, y left, z up) -> pixel (8 - 10 y / x, 8 - 10 (z - 1) / x)
    points = np.array([
        [10.0, 0.0, 1.0],   # pixel (8, 8), depth 10, height 1.0
        [5.0, 0.0, 1.0],    # the same pixel, nearer: wins, height 1.0
        [4.0, 0.0, 0.6],    # pixel (8, 9): another pixel of the same 8x8 cell, height 0.6
        [10.0, -5.0, 1.0],  # pixel (13, 8): cell (1, 1) with stride 8, depth 10
        [2.0, 0.0, 1.0],    # pixel (8, 8) again, nearest: depth 2 wins the pixel
        [-3.0, 0.0, 1.0],   # behind the camera: dropped
    ])
    depth, height = lidar_depth_height(points, intrinsics, cam2ego, np.eye(3), (16, 16), 8)
    assert depth.shape == (2, 2)
    assert depth[1, 1] == pytest.approx(2.0) and height[1, 1] == pytest.approx(0.6)  # min depth, min height
    assert np.isnan(depth[0]).all() and np.isnan(depth[1, 0])
    points = points[[0, 3]]
    depth, height = lidar_depth_height(points, intrinsics, cam2ego, np.eye(3), (16, 16), 8)
    assert depth[1, 1] == pytest.approx(10.0) and height[1, 1] == pytest.approx(1.0)


def test_synthetic_layout_matches_occ3d(tiny_occ3d):
    for split in ("train", "val"):
        assert (tiny_occ3d / f"bevdetv2-nuscenes_infos_{split}.pkl").is_file()
    infos = load_infos(tiny_occ3d / "bevdetv2-nuscenes_infos_train.pkl")
    assert len(infos) == 2 and set(infos[0]["cams"]) == set(NUSCENES_CAMERAS)
    assert infos[0]["occ_path"].startswith("./data/nuscenes/gts/")
    records = occ3d_records(tiny_occ3d, "train")
    labels = read_labels(records[0].labels_path, SYNTHETIC_GRID)
    assert {k: v.shape for k, v in labels.items()} == {k: (50, 50, 16) for k in ("semantics", "mask_lidar", "mask_camera")}
    assert all(v.dtype == np.uint8 for v in labels.values())
    visible = labels["semantics"][labels["mask_camera"] > 0]
    counts = np.bincount(visible, minlength=18)
    assert counts[OCC3D_FREE] > counts[:OCC3D_FREE].sum()  # mostly free space, as in the real sample
    assert counts[11] > 0 and counts[15] + counts[16] > 0  # road and buildings/vegetation seen


def test_rays_stop_at_the_first_occupied_voxel_and_only_hits_mark_visibility():
    """A 4 x 4 x 4 world of 1 m voxels with one car voxel at (3, 1, 1): a ray along +x from (0.5, 1.5, 1.5) enters it
    through an x face after 2.5 m and sees cells (0..3, 1, 1); a ray along +y leaves the grid and sees nothing; a ray
    starting outside the grid sees nothing; a ray starting in the car stops at 0 m with no face."""
    world = World(OccupancyGrid((0.0, 4.0), (0.0, 4.0), (0.0, 4.0), (1.0, 1.0, 1.0)))
    world.box((3.0, 4.0), (1.0, 2.0), (1.0, 2.0), 1, np.array([0.2, 0.4, 0.6], np.float32))
    origins = np.array([[0.5, 1.5, 1.5], [0.5, 1.5, 1.5], [-0.5, 1.5, 1.5], [3.5, 1.5, 1.5]])
    directions = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0], [0, 0, 1.0]])
    hits = cast_rays(world, origins, directions)
    assert hits.distance[0] == pytest.approx(2.5) and hits.distance[3] == 0
    assert np.isinf(hits.distance[1:3]).all()
    assert hits.label.tolist() == [1, OCC3D_FREE, OCC3D_FREE, 1] and hits.axis.tolist() == [0, -1, -1, -1]
    assert hits.colour[0] == pytest.approx([0.2, 0.4, 0.6])
    assert sorted(map(tuple, np.argwhere(hits.visited))) == [(0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 1, 1)]


def test_key_frame_camera_poses_match_the_rig(tiny_occ3d):
    record = occ3d_records(tiny_occ3d, "train")[0]
    rig = camera_rig(0.09)
    for camera in record.cameras:
        assert camera.cam2ego == pytest.approx(rig[camera.name][0], abs=1e-6)
        assert camera.intrinsics == pytest.approx(rig[camera.name][1])


def test_lidar_points_in_the_ego_frame_sit_on_occupied_voxels(tiny_occ3d):
    record = occ3d_records(tiny_occ3d, "train")[0]
    labels = read_labels(record.labels_path, SYNTHETIC_GRID)["semantics"]
    points = read_lidar_points(record.lidar_path)
    ego = points @ record.lidar2ego[:3, :3].T + record.lidar2ego[:3, 3]
    ray = ego - record.lidar2ego[:3, 3]
    inside = ego + 0.01 * ray / np.linalg.norm(ray, axis=1, keepdims=True)  # 1 cm past the surface
    cell = np.floor((inside - np.array(SYNTHETIC_GRID.lower)) / np.array(SYNTHETIC_GRID.voxel)).astype(int)
    assert len(points) > 1000
    assert (labels[cell[:, 0], cell[:, 1], cell[:, 2]] != OCC3D_FREE).mean() > 0.99


def test_dataset_items_and_bev_flip_moves_labels_with_geometry(tiny_occ3d):
    records = occ3d_records(tiny_occ3d, "train")
    plain = Occ3DDataset(records, SYNTHETIC_GRID, ImageAugment(size=(32, 64)))[0]
    assert plain["images"].shape == (6, 3, 32, 64) and plain["depth"].shape == (6, 2, 4)
    assert plain["bda"].numpy() == pytest.approx(np.eye(3))
    assert plain["height_bin"].min() >= 0 and plain["height_bin"].max() <= 64
    seen = set()
    dataset = Occ3DDataset(records, SYNTHETIC_GRID, ImageAugment(size=(32, 64)), train=True)
    for seed in range(12):
        torch.manual_seed(seed)
        item = dataset[0]
        flips = (bool(item["bda"][0, 0] < 0), bool(item["bda"][1, 1] < 0))
        seen.add(flips)
        axes = tuple(a for a, f in enumerate(flips) if f)
        expected = torch.flip(plain["semantics"], axes) if axes else plain["semantics"]
        assert torch.equal(item["semantics"], expected)
    assert len(seen) >= 3
    batch = collate_occ3d([plain, plain])
    assert batch["images"].shape == (2, 6, 3, 32, 64) and batch["token"] == [plain["token"]] * 2


def _copy(tiny_occ3d: Path, tmp_path: Path) -> Path:
    root = tmp_path / "nuscenes"
    shutil.copytree(tiny_occ3d, root)
    return root


def _rewrite_infos(root: Path, change) -> None:
    path = root / "bevdetv2-nuscenes_infos_train.pkl"
    content = pickle.loads(path.read_bytes())
    change(content["infos"][0])
    path.write_bytes(pickle.dumps(content))


def test_broken_info_records_name_the_sample(tiny_occ3d, tmp_path):
    root = _copy(tiny_occ3d, tmp_path)
    token = load_infos(root / "bevdetv2-nuscenes_infos_train.pkl")[0]["token"]
    _rewrite_infos(root, lambda info: info["cams"].pop("CAM_BACK"))
    with pytest.raises(DataError, match=rf"sample {token}: camera CAM_BACK is missing"):
        occ3d_records(root, "train")
    _rewrite_infos(root, lambda info: info.pop("occ_path"))
    with pytest.raises(DataError, match=rf"sample {token}: info record lacks occ_path"):
        occ3d_records(root, "train")


def test_info_files_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (math.factorial, (5,))

    path = tmp_path / "bevdetv2-nuscenes_infos_train.pkl"
    path.write_bytes(pickle.dumps({"infos": [Exploit()]}))
    with pytest.raises(DataError, match=r"holds a math.factorial object; only plain types and numpy arrays"):
        load_infos(path)
    with pytest.raises(DataError, match="not found"):
        load_infos(tmp_path / "missing.pkl")
    with pytest.raises(DataError, match="data root .* not found"):
        occ3d_records(tmp_path / "nowhere", "train")


def test_broken_files_name_the_sample(tiny_occ3d, tmp_path):
    root = _copy(tiny_occ3d, tmp_path)
    record = occ3d_records(root, "train")[0]
    dataset = Occ3DDataset([record], SYNTHETIC_GRID, ImageAugment(size=(32, 64)))
    np.savez(record.labels_path, semantics=np.zeros((200, 200, 16), np.uint8),
             mask_lidar=np.zeros((200, 200, 16), np.uint8), mask_camera=np.zeros((200, 200, 16), np.uint8))
    with pytest.raises(DataError, match=rf"sample {record.token}: .*semantics has shape \(200, 200, 16\) but the grid"):
        dataset[0]
    record.labels_path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match=rf"sample {record.token}: .*labels.npz is not a readable .npz"):
        dataset[0]
    shutil.copy(tiny_occ3d / record.labels_path.relative_to(root), record.labels_path)
    record.cameras[2].image_path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=rf"sample {record.token}: CAM_FRONT_RIGHT image .* cannot be decoded"):
        dataset[0]
    record.cameras[2].image_path.unlink()
    with pytest.raises(DataError, match=rf"sample {record.token}: CAM_FRONT_RIGHT image .* not found"):
        dataset[0]
    record.lidar_path.write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(DataError, match="not a multiple of 5"):
        read_lidar_points(record.lidar_path)


def _info_with_camera_egos(ego_x: list[float]) -> dict:
    """An info record whose cameras were captured at different ego poses (x offsets in metres), the LiDAR at 0."""
    identity = [1.0, 0.0, 0.0, 0.0]
    cams = {name: {"data_path": f"samples/{name}/x.jpg", "sensor2ego_translation": [0.0, 0.0, 1.5],
                   "sensor2ego_rotation": identity, "ego2global_translation": [x, 0.0, 0.0],
                   "ego2global_rotation": identity, "cam_intrinsic": np.eye(3)}
            for name, x in zip(NUSCENES_CAMERAS, ego_x)}
    return {"token": "t", "lidar_path": "samples/LIDAR_TOP/x.bin", "lidar2ego_translation": [0.0, 0.0, 1.8],
            "lidar2ego_rotation": identity, "ego2global_translation": [0.0, 0.0, 0.0],
            "ego2global_rotation": identity, "scene_name": "s", "occ_path": "./data/nuscenes/gts/s/t", "cams": cams}


def test_key_ego_frame_is_the_lidar_pose_or_the_first_cameras():
    info = _info_with_camera_egos([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    lidar = parse_info(info, "/data")
    first = parse_info(info, "/data", key_ego="first_camera")
    assert [c.cam2ego[0, 3] for c in lidar.cameras] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert [c.cam2ego[0, 3] for c in first.cameras] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert first.lidar2ego[:3, 3] == pytest.approx([-0.5, 0.0, 1.8]) and lidar.lidar2ego[:3, 3] == pytest.approx(
        [0.0, 0.0, 1.8])
    with pytest.raises(ConfigError, match="preprocessing.key_ego must be one of lidar, first_camera, not "
                                          "'second_camera'"):
        Preprocessing(key_ego="second_camera")


def test_bicubic_pipeline_is_pillows_resize_and_crop_and_agrees_with_post(tiny_occ3d):
    record = occ3d_records(tiny_occ3d, "train")[0]
    source = Image.open(record.cameras[1].image_path).convert("RGB")  # CAM_FRONT, 144 x 80 at the tiny scale
    augment = ImageAugment(size=(32, 64))
    bicubic = Preprocessing(resample="bicubic")
    item = Occ3DDataset([record], SYNTHETIC_GRID, augment, preprocessing=bicubic, targets=False)[0]
    scale = 64 / source.width
    resized = source.resize((int(source.width * scale), int(source.height * scale)), Image.Resampling.BICUBIC)
    top = int(source.height * scale - 32)
    expected = np.asarray(resized.crop((0, top, 64, top + 32)), dtype=np.float64)
    mean, std = np.array(IMAGENET_MEAN) * 255, np.array(IMAGENET_STD) * 255
    pixels = item["images"][1].numpy().transpose(1, 2, 0) * std + mean
    np.testing.assert_allclose(pixels, expected, atol=1e-3)
    assert item["post"][1].numpy() == pytest.approx(image_affine(scale, (0, top), False, 0.0, (32, 64)), abs=1e-5)
    # augmented views: the Pillow image and an OpenCV warp of the source by the same post are the same picture
    train = Occ3DDataset([record], SYNTHETIC_GRID, ImageAugment(size=(32, 64), rotate=(-20.0, 20.0)), train=True,
                         preprocessing=bicubic, targets=False, bev_flip=False)
    for epoch in range(4):
        view = train[(epoch, 0)]
        post = view["post"][1].numpy()
        warped = cv2.warpAffine(np.asarray(source), post[:2], (64, 32), flags=cv2.INTER_LINEAR)
        shown = view["images"][1].numpy().transpose(1, 2, 0) * std + mean
        inner = (slice(4, -4), slice(6, -6))  # away from the borders that rotation fills
        assert np.abs(shown[inner] - warped[inner]).mean() < 12, epoch
