"""What ``train.py``, ``eval.py`` and ``predict.py`` do, given a composed Hydra config.

The entry-point scripts stay thin: they compose the config and call :func:`main` with one of
:func:`train`, :func:`evaluate` or :func:`predict`. User mistakes (:class:`~visionzoo.errors.VisionZooError`)
end in one line on stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table
from torch import nn

import visionzoo.config_resolvers  # noqa: F401  (registers ${model_card:...})
from visionzoo.errors import VisionZooError
from visionzoo.files import atomic_write
from visionzoo.checkpoints import check_training_checkpoint, resume_checkpoint
from visionzoo.models.weights import load_weights

log = logging.getLogger(__name__)


class _NoAdvertising(logging.Filter):
    """Drops Lightning's "Tip: try installing litlogger / litmodels" lines: product advertising, not run output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip: For seamless cloud" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdvertising())


def main(job: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``job(cfg)``; a user error becomes one clear line and exit status 2."""
    try:
        return job(cfg)
    except (VisionZooError, InstantiationException) as err:
        user_error = _find_user_error(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(2)


def _find_user_error(err: BaseException) -> VisionZooError | str | None:
    """Hydra wraps errors raised in constructors; dig the user's error out of the chain. A constructor that got
    an argument it does not take (``+trainer.foo=1``) is the config's fault too: named by its config key."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, VisionZooError):
            return seen
        if isinstance(seen, TypeError) and isinstance(err, InstantiationException) and "argument" in str(seen):
            key = re.search(r"full_key: (\S+)", str(err))
            where = key.group(1) if key else "the config"
            return f"{where}: {seen}; check the {where}.* overrides against configs/"
        seen = seen.__cause__ or seen.__context__
    return None


def _require(cfg: DictConfig, *keys: str) -> None:
    for key in keys:
        if OmegaConf.select(cfg, key, throw_on_missing=False) is None:
            raise VisionZooError(
                f"config has no '{key}': pick a recipe with experiment=NAME (see configs/experiment/) "
                f"or set {key}=..."
            )


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry of a callbacks/logger dict that has a ``_target_`` (so ``logger=null`` works)."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def _drop_predictor(cfg: DictConfig) -> None:
    """A recipe's ``predictor`` reads predict.py's ``input``/``output``; train and eval do not use it."""
    if "predictor" in cfg:
        with open_dict(cfg):
            del cfg["predictor"]


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the datamodule, the network and the task around it."""
    _require(cfg, "data", "model", "task")
    datamodule = instantiate(cfg.data)
    net = instantiate(cfg.model)
    task = instantiate(cfg.task, net=net)
    return datamodule, task


def build_trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    return instantiate(
        cfg.trainer, callbacks=_instantiate_all(cfg.get("callbacks")), logger=_instantiate_all(cfg.get("logger")) or False,
        **overrides,
    )


def output_dir(cfg: DictConfig) -> Path:
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the task; resume from ``ckpt_path`` (a file, or ``last``) when given; test the best checkpoint when
    ``test=true``."""
    _drop_predictor(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, task = build(cfg)
    if not getattr(task, "trainable", True):
        raise VisionZooError(
            f"experiment {cfg.task_name} has nothing to train (every image is fitted at test time); "
            f"run eval.py or predict.py with the same experiment"
        )
    trainer = build_trainer(cfg)
    out = output_dir(cfg)
    # every DDP process writes the same file: atomically
    atomic_write(out / "config.yaml", lambda tmp: OmegaConf.save(cfg, tmp, resolve=True))
    resume = resume_checkpoint(cfg)
    if resume is not None:
        check_training_checkpoint(task, resume)  # a clear line instead of Lightning's traceback
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test"):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        if best:
            load_weights(task, best)
        trainer.test(task, datamodule=datamodule, verbose=False)
        if trainer.is_global_zero:  # under DDP every process tests; one writes
            write_results(task.results_table(), out, title=f"{cfg.task_name}: test")
    return metrics


def evaluate(cfg: DictConfig) -> list[dict[str, Any]]:
    """Evaluate a checkpoint (``ckpt_path``) or pretrained weights (``model.pretrained``) on the test splits; or,
    for recipes with an ``evaluator`` (``dis_predictions``), score prediction files that another model wrote."""
    _drop_predictor(cfg)
    if cfg.get("evaluator") is not None:
        rows = instantiate(cfg.evaluator).run()
        write_results(rows, output_dir(cfg), title=f"{cfg.task_name}: {cfg.evaluator.pred_root}")
        return rows
    ckpt = cfg.get("ckpt_path")
    if not cfg.get("weights_required", True):
        if ckpt is not None:
            raise VisionZooError(f"experiment {cfg.task_name} fits every image from scratch and loads no weights; "
                                 "drop ckpt_path")
    elif ckpt is None and OmegaConf.select(cfg, "model.pretrained") is None:
        raise VisionZooError("eval needs weights: pass ckpt_path=PATH (a .ckpt) or model.pretrained=PATH_OR_URL")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, task = build(cfg)
    if ckpt is not None:
        load_weights(task.net, ckpt)  # a Lightning checkpoint (net.* keys) or the network's own state dict
    trainer = build_trainer(cfg)
    trainer.test(task, datamodule=datamodule, verbose=False)
    rows = task.results_table()
    source = ckpt or OmegaConf.select(cfg, "model.pretrained") or "fitted per image"
    if trainer.is_global_zero:
        write_results(rows, output_dir(cfg), title=f"{cfg.task_name}: {source}")
    return rows


def predict(cfg: DictConfig) -> Any:
    """Run the experiment's predictor (files in, files out) with the network built from the config."""
    _require(cfg, "model", "predictor")
    net = instantiate(cfg.model)
    if cfg.get("ckpt_path") is not None:
        if not isinstance(net, nn.Module):
            raise VisionZooError(f"experiment {cfg.task_name} fits every image from scratch and loads no weights; "
                                 "drop ckpt_path")
        load_weights(net, cfg.ckpt_path)
    predictor = instantiate(cfg.predictor, net=net)
    return predictor.run()


def write_results(rows: list[dict[str, Any]], directory: Path, title: str = "results") -> None:
    """Write ``metrics.json`` and ``metrics.csv`` into ``directory`` and print the rows as a table."""
    if not rows:
        log.warning("no results to write")
        return
    (directory / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(directory / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if isinstance(rows[0].get(column), str) else "right")
    for row in rows:
        table.add_row(*(_format(row.get(c)) for c in columns))
    Console(width=max(120, 14 * len(columns))).print(table)
    print(f"metrics written to {directory / 'metrics.json'} and {directory / 'metrics.csv'}")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"
    return "" if value is None else str(value)
