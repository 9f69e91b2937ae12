"""Lightning checkpoint policy of training runs: which checkpoint a run resumes from, and whether it can.

Training concerns kept out of the model layer (:mod:`visionzoo.models.weights` only reads and loads tensors).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from visionzoo.errors import VisionZooError, WeightsError
from visionzoo.models.weights import load_state_dict_into, require_clean, resolve, torch_load_safely, unwrap_state_dict

log = logging.getLogger(__name__)


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path`` to resume from. ``last``: the newest ``checkpoints/last.ckpt`` of this run folder or, failing
    that, of this task's earlier runs under ``paths.log_dir`` (an error when there is none). ``auto``: this run
    folder's last.ckpt when it exists, else a fresh start (for cluster jobs that may be requeued)."""
    value = cfg.get("ckpt_path")
    if value not in ("last", "auto"):
        return value
    own = _run_dir(cfg) / "checkpoints" / "last.ckpt"
    if value == "auto":
        if own.is_file():
            log.info("resuming from %s", own)
            return str(own)
        return None
    runs = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    candidates = [own] if own.is_file() else sorted(runs.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise VisionZooError(f"ckpt_path=last: no checkpoints/last.ckpt in {_run_dir(cfg)} or under {runs}; "
                             "pass ckpt_path=PATH or hydra.run.dir=THE_RUN_TO_RESUME")
    log.info("resuming from %s", candidates[-1])
    return str(candidates[-1])


def check_training_checkpoint(task: nn.Module, source: str | os.PathLike) -> None:
    """Before resuming training from ``source``: it exists, unpickles safely, is a Lightning training checkpoint
    (weights plus epoch/step and optimizer state) and its weights fit ``task``; else one WeightsError line."""
    path = resolve(source)
    checkpoint = torch_load_safely(path)
    if not isinstance(checkpoint, Mapping) or not {"state_dict", "global_step", "optimizer_states"} <= set(checkpoint):
        raise WeightsError(f"{path} is not a training checkpoint (no optimizer or step state) and cannot be resumed; "
                           "to start a new run from its weights use model.pretrained=" + str(path))
    require_clean(task, load_state_dict_into(task, unwrap_state_dict(checkpoint, path), source=str(source)), source)


def _run_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)
