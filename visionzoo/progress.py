"""Progress for training, evaluation and prediction loops: a rich bar on a terminal, plain lines elsewhere.

Off a terminal (``make demo | tee log``, CI, a cluster job's log file) a redrawn bar prints nothing readable, so
:class:`PlainProgress` prints one line at most every ``every_s`` seconds (and at the end of each loop): the stage,
epoch, step of total, the progress-bar metrics (``train/loss``, ``val/maxFb`` ...), iterations per second and the
time left in the loop.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar


def format_seconds(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``; ``65`` -> ``"1:05"``."""
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainProgress(ProgressBar):
    """Rate-limited plain progress lines (see the module docstring).

    Args:
        every_s: seconds between two lines of the same loop (the last batch of a loop always prints).
        stream: where lines go (standard output by default).
    """

    def __init__(self, every_s: float = 30.0, stream: TextIO | None = None) -> None:
        super().__init__()
        self.every_s, self.stream = float(every_s), stream
        self._enabled = True
        self._started = self._last = 0.0
        self._tested = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _start(self) -> None:
        self._started = self._last = time.monotonic()

    def _report(self, stage: str, done: int, total: int | float, trainer: "L.Trainer", extra: str = "") -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        now = time.monotonic()
        last = isinstance(total, int) and done >= total
        if not last and now - self._last < self.every_s:
            return
        self._last = now
        rate = done / max(now - self._started, 1e-9)
        of_total = f"/{total}" if isinstance(total, int) else ""
        eta = f", {format_seconds((total - done) / rate)} left" if isinstance(total, int) and rate > 0 else ""
        line = f"{stage} step {done}{of_total}{extra}, {rate:.2f} it/s{eta}"
        print(line, file=self.stream or sys.stdout, flush=True)

    def _metrics(self, trainer: "L.Trainer", pl_module: "L.LightningModule", prefix: str) -> str:
        shown = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k.startswith(prefix)}
        return "".join(f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}" for k, v in shown.items())

    # ---- training ---------------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        self._start()

    def on_train_batch_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self._report(f"epoch {trainer.current_epoch + 1}{epochs}", batch_idx + 1, self.total_train_batches, trainer,
                     self._metrics(trainer, pl_module, "train/"))

    def on_validation_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        if not trainer.sanity_checking and self._enabled and trainer.is_global_zero:
            print(f"validation after epoch {trainer.current_epoch + 1}{self._metrics(trainer, pl_module, 'val/')}",
                  file=self.stream or sys.stdout, flush=True)

    # ---- evaluation -------------------------------------------------------------------------------------------
    def on_test_epoch_start(self, trainer: "L.Trainer", pl_module: "L.LightningModule") -> None:
        self._start()
        self._tested = 0

    def on_test_batch_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule", outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._tested += 1  # over all test dataloaders (splits)
        total = sum(int(n) for n in trainer.num_test_batches)
        self._report("test", self._tested, total, trainer)


def terminal_progress_bar(every_s: float = 30.0) -> ProgressBar:
    """A rich bar when standard output is a terminal, :class:`PlainProgress` lines otherwise."""
    return RichProgressBar() if sys.stdout.isatty() else PlainProgress(every_s)
