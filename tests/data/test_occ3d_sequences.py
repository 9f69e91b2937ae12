"""Multi-frame Occ3D samples (DHD-M/L): the official choice of previous frames, their geometry in the key ego
frame, the augmentation shared by the frames, and the synthetic sequences' known ego motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visionzoo.constants import OCC3D_FREE
from visionzoo.data.occ3d import ImageAugment, Occ3DDataset, occ3d_records, read_labels, read_lidar_points
from visionzoo.data.synthetic_occ3d import EGO_STEP
from visionzoo.geometry import SYNTHETIC_GRID
from visionzoo.models.dhd.view import lift_frustum, voxel_indices
from visionzoo.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def records(tiny_occ3d_sequences):
    return occ3d_records(tiny_occ3d_sequences, "train", key_ego="first_camera", frames=3)


def test_previous_frames_are_the_samples_before_within_the_scene(records):
    """Two scenes of three samples: ``k`` samples back, or the sample itself where that one is in another scene
    (BEVDet's ``get_adj_info``)."""
    assert [r.scene[-4:] for r in records] == ["0000"] * 3 + ["0001"] * 3
    tokens = [r.token for r in records]
    picked = [[tokens.index(frame[0].image_path.name.split("_")[0]) for frame in r.adjacent] for r in records]
    assert picked == [[0, 0], [0, 0], [1, 0], [3, 3], [3, 4], [4, 3]]


def test_previous_cameras_are_moved_into_the_key_ego_by_the_ego_motion(records):
    """The synthetic ego drives straight along x: the previous frame's cameras sit the step behind, unrotated."""
    step = pytest.approx(EGO_STEP, abs=1e-6)
    key, previous = records[2].cameras, records[2].adjacent[0]
    for now, before in zip(key, previous):
        assert before.name == now.name
        assert before.cam2ego[:3, :3] == pytest.approx(now.cam2ego[:3, :3], abs=1e-9)
        assert now.cam2ego[0, 3] - before.cam2ego[0, 3] == step
        assert before.cam2ego[1:3, 3] == pytest.approx(now.cam2ego[1:3, 3], abs=1e-6)
    assert records[2].adjacent[1][0].cam2ego[0, 3] == pytest.approx(key[0].cam2ego[0, 3] - 2 * EGO_STEP, abs=1e-6)


def test_the_previous_frame_lifted_by_its_geometry_lands_on_the_key_frames_world(records):
    """The previous sample's LiDAR points as its front camera sees them (pixel and depth), lifted with the reader's
    previous-camera-to-key-ego transform by the model's lifting code, land on occupied voxels of the key sample's
    labels; ignoring the ego motion does not."""
    key, previous = records[2], records[1]
    labels = read_labels(key.labels_path, SYNTHETIC_GRID)["semantics"]
    points = read_lidar_points(previous.lidar_path)
    ego = points @ previous.lidar2ego[:3, :3].T + previous.lidar2ego[:3, 3]  # the previous sample's own ego
    camera = previous.cameras[1]
    assert camera.name == "CAM_FRONT"
    seen = (ego - camera.cam2ego[:3, 3]) @ camera.cam2ego[:3, :3]  # camera frame
    seen = seen[seen[:, 2] > 1.0]
    uv = seen @ camera.intrinsics.T
    pixels = torch.tensor(np.concatenate([uv[:, :2] / uv[:, 2:], seen[:, 2:]], axis=1))  # (u, v, depth)
    assert len(pixels) > 1000

    def occupied_share(cam2ego: np.ndarray) -> float:
        lifted = lift_frustum(pixels.view(1, 1, -1, 3), torch.tensor(camera.intrinsics)[None, None],
                              torch.tensor(cam2ego)[None, None], torch.eye(3, dtype=torch.float64)[None, None],
                              torch.eye(3, dtype=torch.float64)[None])
        ray = lifted - torch.tensor(cam2ego[:3, 3])
        inside = lifted + 0.01 * ray / ray.norm(dim=-1, keepdim=True)  # 1 cm past the surface
        kept, index = voxel_indices(inside.float(), SYNTHETIC_GRID, rounding="floor")
        assert len(kept) > 0.9 * len(pixels)
        return float((labels.transpose(2, 1, 0).reshape(-1)[index.numpy()] != OCC3D_FREE).mean())

    assert occupied_share(key.adjacent[0][1].cam2ego) > 0.99
    assert occupied_share(camera.cam2ego) < 0.9  # as if the car had not moved


def test_frames_share_the_augmentation_and_the_targets_are_the_key_frames(records, tiny_occ3d_sequences):
    preprocessing = Preprocessing(key_ego="first_camera", frames=3)
    dataset = Occ3DDataset(records, SYNTHETIC_GRID, ImageAugment(size=(32, 64)), train=True, seed=3,
                           preprocessing=preprocessing)
    first, third = dataset[(0, 0)], dataset[(0, 2)]  # (epoch, index): the augmentation drawn from the seed
    assert first["images"].shape == (3, 6, 3, 32, 64) and first["cam2ego"].shape == (3, 6, 4, 4)
    assert first["post"].shape == (6, 3, 3) and first["depth"].shape == (6, 2, 4)
    # a scene's first sample stands in for its own predecessors: the same image under the same augmentation
    assert torch.equal(first["images"][0], first["images"][1]) and torch.equal(first["images"][0], first["images"][2])
    assert not torch.equal(third["images"][0], third["images"][1])
    single = Occ3DDataset(occ3d_records(tiny_occ3d_sequences, "train", key_ego="first_camera"), SYNTHETIC_GRID,
                          ImageAugment(size=(32, 64)), train=True, seed=3,
                          preprocessing=Preprocessing(key_ego="first_camera"))[(0, 2)]
    assert torch.equal(single["images"], third["images"][0])  # the key frame as a one-frame model sees it
    assert torch.equal(single["semantics"], third["semantics"]) and torch.equal(single["bda"], third["bda"])
