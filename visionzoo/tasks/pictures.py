"""Pictures of a run: written into ``<run dir>/pictures/`` and shown in the loggers that take images."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger

from visionzoo.data.images import write_image


def publish_picture(module: L.LightningModule, name: str, rgb: np.ndarray) -> Path:
    """Write ``rgb`` (``(H, W, 3)`` uint8) as ``<run dir>/pictures/<name>.png`` and add it to the run's TensorBoard
    (``logger=tensorboard``; tag ``pictures/<name>`` at the current global step). Returns the file's path."""
    trainer = module.trainer
    path = Path(trainer.default_root_dir) / "pictures" / f"{name}.png"
    write_image(path, rgb)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"pictures/{name}", rgb, global_step=module.global_step, dataformats="HWC")
    return path
