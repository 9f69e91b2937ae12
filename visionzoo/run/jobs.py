"""The jobs of ``train.py``, ``eval.py`` and ``predict.py``, given a composed Hydra config.

The entry-point scripts stay thin: they compose the config and call :func:`main` with one of :func:`train`,
:func:`evaluate` or :func:`predict`. The parts each job uses are this package's other modules (config checks,
construction, results, checkpoint policy). User mistakes
(:class:`~visionzoo.errors.VisionZooError`, also when Hydra wraps one raised in a constructor) end in one line on
stderr and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

import lightning as L
from omegaconf import DictConfig, OmegaConf

from visionzoo.run.checkpoints import check_training_checkpoint, resume_checkpoint
from visionzoo.errors import VisionZooError
from visionzoo.files import atomic_write
from visionzoo.models.weights import load_weights
from visionzoo.run.build import build, build_predictor, build_trainer, drop_predictor, instantiate_node
from visionzoo.run.checks import check_weights_policy, require
from visionzoo.run.results import output_dir, write_results

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
    except Exception as err:
        user_error = user_error_in(err)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(2)


def user_error_in(err: BaseException) -> VisionZooError | None:
    """The :class:`VisionZooError` in ``err``'s chain (Hydra wraps errors raised in constructors), if any."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, VisionZooError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _seed(cfg: DictConfig) -> None:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the task; resume from ``ckpt_path`` (a file, or ``last``) when given; test the best checkpoint when
    ``test=true``."""
    check_weights_policy(cfg, "train")
    drop_predictor(cfg)
    _seed(cfg)
    datamodule, task = build(cfg)
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
    check_weights_policy(cfg, "eval")
    drop_predictor(cfg)
    if cfg.get("evaluator") is not None:
        rows = instantiate_node(cfg, "evaluator").run()
        write_results(rows, output_dir(cfg), title=f"{cfg.task_name}: {cfg.evaluator.pred_root}")
        return rows
    _seed(cfg)
    datamodule, task = build(cfg)
    ckpt = cfg.get("ckpt_path")
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
    require(cfg, "model", "predictor")
    check_weights_policy(cfg, "predict")
    net = instantiate_node(cfg, "model")
    if cfg.get("ckpt_path") is not None:
        load_weights(net, cfg.ckpt_path)
    return build_predictor(cfg, net).run()


def serve(cfg: DictConfig) -> None:
    """Serve the config's model(s) over HTTP with the web page (:mod:`visionzoo.serve`)."""
    from visionzoo.serve.server import serve as run_server

    run_server(cfg)
