"""Every config composes; every experiment runs one fast_dev_run step (train) on small built-in data."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from visionzoo import runner

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra"))
GROUP_OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]
TRAIN_EXPERIMENTS = [e for e in EXPERIMENTS if "predictor" not in OmegaConf.load(CONFIG_DIR / "experiment" / f"{e}.yaml")]


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
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


def test_experiments_exist():
    assert {"ben_dis5k", "ben_synthetic", "ben_cutout"} <= set(EXPERIMENTS)


PREDICT_EXPERIMENTS = [e for e in EXPERIMENTS if e not in TRAIN_EXPERIMENTS]
ENTRY_CASES = [("train", e) for e in TRAIN_EXPERIMENTS] + [("eval", e) for e in TRAIN_EXPERIMENTS] + [
    ("predict", e) for e in PREDICT_EXPERIMENTS
]


@pytest.mark.parametrize("entry, experiment", ENTRY_CASES)
def test_experiment_composes_and_resolves(entry, experiment, tmp_path):
    extra = ["input=x", "output=y"] if entry == "predict" else []
    cfg = compose_config(entry, [f"experiment={experiment}", *extra], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["task_name"] and resolved["model"]["_target_"] == "visionzoo.create_model"


@pytest.mark.parametrize("group, option", GROUP_OPTIONS)
def test_every_group_option_composes(group, option, tmp_path):
    cfg = compose_config("train", ["experiment=ben_synthetic", f"{group}={option}"], tmp_path)
    OmegaConf.to_container(cfg, resolve=True)


def small_data_overrides(data_target: str, tiny_dis: Path) -> list[str]:
    """Point an experiment's data at a few tiny built-in samples; every data module must be covered here."""
    if data_target.endswith("DISDataModule"):
        return [f"data.root={tiny_dis}", "data.synthetic=null", "data.input_size=64", "data.num_workers=0",
                "data.batch_size=2", "data.eval_batch_size=2"]
    raise AssertionError(f"add small-data overrides for {data_target}")


@pytest.mark.parametrize("experiment", TRAIN_EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, tiny_dis, tmp_path):
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true", "logger=csv", "test=true",
                 "callbacks.rich_progress_bar=null"]
    data_target = compose_config("train", overrides, tmp_path).data._target_
    cfg = compose_config("train", overrides + small_data_overrides(data_target, tiny_dis), tmp_path)
    metrics = runner.train(cfg)
    assert metrics["train/loss"] > 0
    assert (tmp_path / "config.yaml").exists()
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "metrics.csv").exists()
