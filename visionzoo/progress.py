"""Progress for training, evaluation and prediction loops: a rich bar on a terminal, plain lines elsewhere.

:func:`terminal_progress_bar` is the Lightning callback of the configs (``callbacks.rich_progress_bar``);
:func:`file_progress` the bar of the files-in/files-out jobs (predictors, prediction-folder evaluators).

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
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


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


class FileProgress(Progress):
    """A rich progress bar over files that, when its console is not a terminal, also prints each task's state as a
    plain line (``denoising 2/3, 0:45 left``) at most every ``every_s`` seconds and when a task finishes."""

    def __init__(self, *columns: Any, every_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.every_s = float(every_s)
        self._last_line = time.monotonic()

    def _plain_lines(self, task_id: TaskID) -> None:
        if self.console.is_terminal:
            return
        now = time.monotonic()
        if now - self._last_line < self.every_s and not self._tasks[task_id].finished:
            return
        self._last_line = now
        for task in self.tasks:
            total = f"/{task.total:g}" if task.total is not None else ""
            left = f", {format_seconds(task.time_remaining)} left" if task.time_remaining is not None else ""
            self.console.print(f"{task.description.strip()} {task.completed:g}{total}{left}", highlight=False)

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._plain_lines(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._plain_lines(task_id)


def file_progress(every_s: float = 30.0) -> FileProgress:
    """The progress bar of batch jobs over files, on standard error."""
    return FileProgress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), every_s=every_s)
