"""The LightningModule base every task family builds on: optimiser/scheduler wiring, and a results table.

Checkpoints stay loadable with ``torch.load(weights_only=True)``: hyper-parameters are not pickled; instead the
network's registry record (name + builder arguments) is stored under ``checkpoint["visionzoo"]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch
from torch import nn

from visionzoo.errors import TrainingDivergedError


class VisionTask(L.LightningModule):
    """Common plumbing for the task LightningModules.

    Args:
        net: the bare ``nn.Module`` (built by ``visionzoo.create_model``).
        optimizer: ``partial`` of a torch optimiser, called with the parameters to train.
        scheduler: optional ``partial(optimizer, total_steps=...)`` returning a per-step LR scheduler, e.g.
            :func:`visionzoo.tasks.schedules.warmup_cosine`; ``total_steps`` is filled from the trainer.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self._results: list[dict[str, Any]] = []  # the rows of the last test run, filled by subclasses

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates; subclasses narrow this for staged training."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    #: The batch entry whose length is the batch size (for logging).
    input_key = "image"

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The loss terms of one training batch, ``"loss"`` being the total to minimise."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Losses, a stop with one clear line when they are not finite, ``train/<term>`` logs, the total."""
        losses = self.training_losses(batch)
        self.check_finite(losses)
        size = len(batch[self.input_key])
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=size)
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size)
        return losses["loss"]

    def check_finite(self, losses: dict[str, torch.Tensor]) -> None:
        """Stop with one clear line when the total loss is NaN/inf: the step, the loss terms, and the last
        checkpoint (written before this step, so its weights are good) to resume from."""
        if torch.isfinite(losses["loss"]):
            return
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        callbacks = self.trainer.checkpoint_callbacks if self._trainer is not None else []
        written = [Path(p) for cb in callbacks for p in (cb.last_model_path, cb.best_model_path) if p and Path(p).is_file()]
        last = str(max(reversed(written), key=lambda p: p.stat().st_mtime)) if written else ""  # ties: last.ckpt
        keep = (f"the last good checkpoint is {last}; resume from it with ckpt_path={last} and a lower "
                "task.optimizer.lr" if last else "no checkpoint was written yet; lower task.optimizer.lr")
        raise TrainingDivergedError(f"training diverged: non-finite loss at step {self.global_step} "
                                    f"(epoch {self.current_epoch}): {terms}; {keep}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        record = getattr(self.net, "visionzoo_config", None)
        if record is not None:
            checkpoint["visionzoo"] = {"name": record["name"], "kwargs": dict(record["kwargs"])}

    def results_table(self) -> list[dict[str, Any]]:
        """Rows of evaluation results after ``trainer.test``: the task's own rows, else the logged test metrics."""
        if self._results:
            return list(self._results)
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")}
        return [metrics] if metrics else []
