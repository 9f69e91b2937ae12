"""Config checks made before a job builds anything heavy; each failure is a :class:`~visionzoo.errors.ConfigError`
whose one line names the key at fault."""

from __future__ import annotations

import inspect
from typing import Any

from hydra._internal.utils import _locate
from omegaconf import DictConfig, ListConfig, OmegaConf

from visionzoo.errors import ConfigError

JOBS = ("train", "eval", "predict")


def require(cfg: DictConfig, *keys: str) -> None:
    """Each of ``keys`` is set (an experiment picks them)."""
    for key in keys:
        if OmegaConf.select(cfg, key, throw_on_missing=False) is None:
            raise ConfigError(
                f"config has no '{key}': pick a recipe with experiment=NAME (see configs/experiment/) "
                f"or set {key}=..."
            )


def check_weights_policy(cfg: DictConfig, job: str) -> None:
    """The one place that knows whether a recipe uses weights (``weights_required``, true unless an experiment
    says otherwise): a recipe without weights has nothing to train and takes no ``ckpt_path``; an evaluation with
    weights needs them given."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {JOBS}, not {job!r}")
    name = cfg.get("task_name", "this experiment")
    if cfg.get("weights_required", True):
        if job == "eval" and cfg.get("ckpt_path") is None and OmegaConf.select(cfg, "model.pretrained") is None:
            raise ConfigError("eval needs weights: pass ckpt_path=PATH (a .ckpt) or model.pretrained=PATH_OR_URL")
        return
    if job == "train":
        use = "eval.py or predict.py" if "predictor" in cfg else "eval.py"
        raise ConfigError(f"experiment {name} has nothing to train (it loads no weights); run {use} with it")
    if cfg.get("ckpt_path") is not None:
        raise ConfigError(f"experiment {name} loads no weights; drop ckpt_path")


def check_arguments(node: Any, key: str) -> None:
    """Every ``_target_`` in ``node`` (at config key ``key``, nested ones included) takes the arguments its node
    gives it, so that ``+trainer.foo=1`` is named as the override at fault instead of failing inside Hydra."""
    if isinstance(node, ListConfig):
        for index, item in enumerate(node):
            check_arguments(item, f"{key}[{index}]")
        return
    if not isinstance(node, DictConfig):
        return
    for child in node:
        if not str(child).startswith("_"):
            check_arguments(node._get_node(child), f"{key}.{child}")
    target = node.get("_target_")
    if target is None:
        return
    try:
        parameters = inspect.signature(_locate(target)).parameters.values()
    except (ValueError, TypeError):  # builtins without a signature: Hydra reports those itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    names = {p.name for p in parameters}
    unknown = [str(k) for k in node if not str(k).startswith("_") and k not in names]
    if unknown:
        short = target.rsplit(".", 1)[-1]
        raise ConfigError(f"{key}: {short} takes no argument {unknown[0]!r}; check the {key}.* overrides against "
                          f"configs/")


def takes_argument(node: Any, name: str) -> bool:
    """Whether the constructor of config ``node`` (its ``_target_``) has a parameter ``name``."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        return False
    try:
        return name in inspect.signature(_locate(target)).parameters
    except (ValueError, TypeError):
        return False


def check_same_grid(data: Any, net: Any) -> None:
    """A DHD network and its data use one occupancy grid (``data.grid``, which the DHD model configs read)."""
    data_grid, net_grid = getattr(data, "grid", None), getattr(net, "grid", None)
    if data_grid is not None and net_grid is not None and data_grid != net_grid:
        raise ConfigError(f"data.grid ({_describe(data_grid)}) is not the grid the model predicts on "
                          f"({_describe(net_grid)}); set data.grid to the model's grid or pick a model for this data")


def _describe(grid: Any) -> str:
    """``200x200x16 voxels of 0.4x0.4x0.4 m from (-40, -40, -1)``."""
    x, y, z = grid.shape
    size = "x".join(f"{v:g}" for v in grid.voxel)
    corner = ", ".join(f"{r[0]:g}" for r in (grid.x_range, grid.y_range, grid.z_range))
    return f"{x}x{y}x{z} voxels of {size} m from ({corner})"
