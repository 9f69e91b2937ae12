"""Instantiating a run's parts from the composed config, each under its config key."""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from visionzoo.models.registry import resolve_preprocessing
from visionzoo.preprocessing import Preprocessing
from visionzoo.run.checks import check_arguments, check_same_grid, require, takes_argument


def instantiate_node(cfg: DictConfig, key: str, **objects: Any) -> Any:
    """Instantiate the node at (dotted) ``key`` after checking every constructor in it takes its arguments.

    ``objects`` (parts already built: a network, the resolved preprocessing) go to the constructor as they are,
    never through OmegaConf, which would turn a dataclass into a config.
    """
    node = OmegaConf.select(cfg, key)
    check_arguments(node, key)
    if not objects:
        return instantiate(node)
    return instantiate(node, _partial_=True)(**objects)


def preprocessing_of(cfg: DictConfig) -> Preprocessing:
    """What the chosen model expects of its input: its card's, with the config's ``preprocessing`` overrides."""
    overrides = OmegaConf.to_container(cfg.get("preprocessing") or {}, resolve=True)
    return resolve_preprocessing(OmegaConf.select(cfg, "model.name"), overrides)


def _preprocessing_for(cfg: DictConfig, key: str) -> dict[str, Preprocessing]:
    """``{"preprocessing": ...}`` when the constructor at ``key`` takes it, else nothing."""
    takes = takes_argument(OmegaConf.select(cfg, key), "preprocessing")
    return {"preprocessing": preprocessing_of(cfg)} if takes else {}


def instantiate_group(cfg: DictConfig, key: str) -> list[Any]:
    """Instantiate each entry of a callbacks/logger dict that has a ``_target_`` (so ``logger=null`` works)."""
    group = cfg.get(key)
    if not group:
        return []
    return [instantiate_node(cfg, f"{key}.{name}") for name, entry in group.items()
            if isinstance(entry, DictConfig) and "_target_" in entry]


def drop_predictor(cfg: DictConfig) -> None:
    """A recipe's ``predictor`` reads predict.py's ``input``/``output``; train and eval do not use it."""
    if "predictor" in cfg:
        with open_dict(cfg):
            del cfg["predictor"]


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the datamodule, the network and the task around it."""
    require(cfg, "data", "model", "task")
    datamodule = instantiate_node(cfg, "data", **_preprocessing_for(cfg, "data"))
    net = instantiate_node(cfg, "model")
    check_same_grid(datamodule, net)
    task = instantiate_node(cfg, "task", net=net)
    return datamodule, task


def build_predictor(cfg: DictConfig, net: Any) -> Any:
    """The experiment's predictor around ``net``."""
    return instantiate_node(cfg, "predictor", net=net, **_preprocessing_for(cfg, "predictor"))


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    """The Lightning trainer with the config's callbacks and loggers."""
    return instantiate_node(cfg, "trainer", callbacks=instantiate_group(cfg, "callbacks"),
                            logger=instantiate_group(cfg, "logger") or False, **overrides)
