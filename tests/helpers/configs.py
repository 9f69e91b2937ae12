"""Composing the project's Hydra configs in tests, and pointing any experiment at small built-in data."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """The ``train`` / ``eval`` / ``predict`` config with ``overrides``, its outputs and cache under ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.root_dir = str(output_dir)
        cfg.paths.cache_dir = str(output_dir / "cache")
        del cfg["hydra"]
    return cfg


def small_data_overrides(data_target: str, tiny_dis: Path, tiny_occ3d: Path) -> list[str]:
    """Point an experiment's data at a few tiny built-in samples; every data module must be covered here."""
    if data_target.endswith("DISDataModule"):
        return [f"data.root={tiny_dis}", "data.synthetic=null", "data.input_size=64", "data.num_workers=0",
                "data.batch_size=2", "data.eval_batch_size=2"]
    if data_target.endswith("Occ3DDataModule"):  # the synthetic grid: Occ3D's 200 x 200 BEV is too slow here
        grid = "{x_range: [-20.0, 20.0], y_range: [-20.0, 20.0], z_range: [-1.0, 5.4], voxel: [0.8, 0.8, 0.4]}"
        return [f"data.root={tiny_occ3d}", "data.synthetic=null", f"data.grid={grid}", "data.input_size=[32,64]",
                "data.num_workers=0", "data.batch_size=1", "data.eval_batch_size=1",
                "+model.depth_bins=[1.0,29.0,1.0]"]
    if data_target.endswith("PhotoDataModule"):  # every image of the tiny DIS5K as a photo; a random ben_tiny teaches
        teacher = tiny_dis.parent / "teacher_ben_tiny"
        if not teacher.is_dir():
            import visionzoo

            visionzoo.save_pretrained(visionzoo.create_model("ben_tiny"), teacher)
        return [f"data.root={tiny_dis}/DIS5K", f"data.dis5k_root={tiny_dis}", "data.input_size=64",
                "data.num_workers=0", "data.batch_size=2", "data.eval_batch_size=2", "model=ben_tiny", "teacher=ben",
                "teacher.name=ben_tiny", f"teacher.weights={teacher}"]
    raise AssertionError(f"add small-data overrides for {data_target}")
