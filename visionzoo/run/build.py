"""Instantiating a run's parts from the composed config, each under its config key."""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from visionzoo.run.checks import check_arguments, check_same_grid, require


def instantiate_node(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """Instantiate the node at (dotted) ``key`` after checking every constructor in it takes its arguments."""
    node = OmegaConf.select(cfg, key)
    check_arguments(node, key)
    return instantiate(node, **kwargs)


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
    datamodule = instantiate_node(cfg, "data")
    net = instantiate_node(cfg, "model")
    check_same_grid(datamodule, net)
    task = instantiate_node(cfg, "task", net=net)
    return datamodule, task


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    """The Lightning trainer with the config's callbacks and loggers."""
    return instantiate_node(cfg, "trainer", callbacks=instantiate_group(cfg, "callbacks"),
                            logger=instantiate_group(cfg, "logger") or False, **overrides)
