"""Every zoo datamodule meets the contracts its tasks read (visionzoo/data/contract.py), and a task without one
falls back to its documented default instead of guessing attribute names."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from tests.helpers.configs import compose_config, small_data_overrides
from visionzoo.data.contract import CameraRig, NamedSplits, SyntheticNoise, datamodule_of

CONTRACTS = {"DISDataModule": {NamedSplits}, "PhotoDataModule": {NamedSplits}, "Occ3DDataModule": {CameraRig},
             "DenoiseDataModule": {SyntheticNoise}}


@pytest.mark.parametrize("experiment", ["ben_synthetic", "ben_distill", "dhd_synthetic", "dip_denoise"])
def test_zoo_datamodules_meet_their_contracts(experiment, tiny_dis, tiny_occ3d, tmp_path):
    cfg = compose_config("eval", [f"experiment={experiment}"], tmp_path)
    target = cfg.data._target_
    overrides = [] if target.endswith("DenoiseDataModule") else small_data_overrides(target, tiny_dis, tiny_occ3d)
    cfg = compose_config("eval", [f"experiment={experiment}", *overrides], tmp_path)
    datamodule = instantiate(cfg.data)
    expected = CONTRACTS[type(datamodule).__name__]
    assert {c for c in (NamedSplits, CameraRig, SyntheticNoise) if isinstance(datamodule, c)} == expected
    if NamedSplits in expected:
        names = [*datamodule.val_splits, *datamodule.test_splits]
        assert datamodule.val_splits and datamodule.test_splits and all(isinstance(n, str) and n for n in names)
    if CameraRig in expected:
        assert list(datamodule.cameras)[0].startswith("CAM_")


def test_datamodule_of_gives_none_without_the_contract():
    class Trainer:
        datamodule = type("Loose", (), {"val_splits": ["a"]})()  # half of NamedSplits

    assert datamodule_of(Trainer(), NamedSplits) is None
    Trainer.datamodule.test_splits = ["b"]
    assert datamodule_of(Trainer(), NamedSplits) is Trainer.datamodule
    assert datamodule_of(object(), NamedSplits) is None  # loaders given to trainer.test directly
