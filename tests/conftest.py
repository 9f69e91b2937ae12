"""Shared test set-up: seeded randomness, a private weights cache, the slow tests collected first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from visionzoo.data.synthetic_dis import generate_synthetic_dis
from visionzoo.data.synthetic_occ3d import generate_synthetic_occ3d
from visionzoo.models.ben2 import BEN2Net
from tests.helpers.deterministic import deterministic_state_dict


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (in their own order, then the rest): under ``make test``'s two workers the longest
    runs start at once instead of ending the suite alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _seed_and_cache(monkeypatch, tmp_path_factory):
    torch.manual_seed(0)
    monkeypatch.setenv("VISIONZOO_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_dis(tmp_path_factory) -> Path:
    """A synthetic DIS5K with 1-2 images of 48..80 px per split (for end-to-end runs that must be quick)."""
    counts = {"DIS-TR": 2, "DIS-VD": 2, "DIS-TE1": 1, "DIS-TE2": 1, "DIS-TE3": 1, "DIS-TE4": 1}
    return generate_synthetic_dis(tmp_path_factory.mktemp("dis"), counts=counts, seed=0, size_range=(48, 80))


@pytest.fixture(scope="session")
def tiny_occ3d(tmp_path_factory) -> Path:
    """Synthetic worlds in the Occ3D layout: 2 train + 1 val scenes, cameras at 80 x 144 pixels."""
    return generate_synthetic_occ3d(tmp_path_factory.mktemp("occ3d"), train_scenes=2, val_scenes=1,
                                    image_scale=0.09, lidar_azimuths=180)


@pytest.fixture(scope="session")
def tiny_occ3d_sequences(tmp_path_factory) -> Path:
    """Synthetic sequences in the Occ3D layout: 2 train + 1 val scenes of 3 samples each (the ego 1.6 m further
    along the road in each), cameras at 80 x 144 pixels."""
    return generate_synthetic_occ3d(tmp_path_factory.mktemp("occ3d_sequences"), train_scenes=2, val_scenes=1,
                                    image_scale=0.09, lidar_azimuths=180, samples_per_scene=3)


@pytest.fixture(scope="session")
def ben2_published_weights(tmp_path_factory) -> dict[str, Path]:
    """BEN2 Base with the deterministic test weights in both published file forms: ``BEN2_Base.pth``
    (``{"model_state_dict": ...}``) and the hub's ``model.safetensors`` (380 MB each)."""
    folder = tmp_path_factory.mktemp("ben2")
    state = deterministic_state_dict(BEN2Net().state_dict())
    torch.save({"model_state_dict": state}, folder / "BEN2_Base.pth")
    save_file(state, str(folder / "model.safetensors"))
    return {"pth": folder / "BEN2_Base.pth", "safetensors": folder / "model.safetensors"}


@pytest.fixture(scope="session")
def occ3d_full_grid(tmp_path_factory) -> Path:
    """Synthetic worlds on Occ3D's own grid (200 x 200 x 16 at 0.4 m, for models fixed to it: dhd_s), 1 train +
    1 val scene, cameras at 144 x 80 pixels."""
    return generate_synthetic_occ3d(tmp_path_factory.mktemp("occ3d_full"), train_scenes=1, val_scenes=1,
                                    image_scale=0.09, lidar_azimuths=180,
                                    grid=((-40.0, 40.0), (-40.0, 40.0), (-1.0, 5.4), (0.4, 0.4, 0.4)))


@pytest.fixture(scope="session")
def dhd_m_released_checkpoint(tmp_path_factory) -> Path:
    """dhd_m with the deterministic test weights in the released mmcv form: ``meta``, ``state_dict``, ``optimizer``
    (795 MB)."""
    import visionzoo

    path = tmp_path_factory.mktemp("dhd_m") / "DHD-M.pth"
    state = deterministic_state_dict(visionzoo.create_model("dhd_m").state_dict())
    torch.save({"meta": {"mmcv_version": "1.5.0", "epoch": 24}, "state_dict": state, "optimizer": {}}, path)
    return path


@pytest.fixture(scope="session")
def dhd_s_released_checkpoint(tmp_path_factory) -> Path:
    """dhd_s with the deterministic test weights in the released mmcv form: ``meta``, ``state_dict``, ``optimizer``."""
    import visionzoo

    path = tmp_path_factory.mktemp("dhd_s") / "DHD-S.pth"
    state = deterministic_state_dict(visionzoo.create_model("dhd_s").state_dict())
    torch.save({"meta": {"mmcv_version": "1.5.0", "epoch": 24}, "state_dict": state, "optimizer": {}}, path)
    return path
