"""Progress off a terminal: plain, rate-limited lines for training, validation and testing."""

from __future__ import annotations

import io
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from torch.utils.data import DataLoader, TensorDataset

from visionzoo.progress import PlainProgress, format_seconds, terminal_progress_bar


class _Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/mse", torch.nn.functional.mse_loss(self.layer(x), y), prog_bar=True)

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _run(every_s: float) -> list[str]:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(12, 2), torch.randn(12, 1))
    loader = DataLoader(data, batch_size=4)  # 3 batches
    stream = io.StringIO()
    trainer = L.Trainer(max_epochs=2, callbacks=[PlainProgress(every_s, stream)], logger=False,
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0)
    model = _Regression()
    trainer.fit(model, loader, loader)
    trainer.test(model, [loader, loader], verbose=False)
    return stream.getvalue().splitlines()


def test_every_step_is_a_line_when_not_rate_limited():
    lines = _run(every_s=0)
    train = [line for line in lines if line.startswith("epoch")]
    assert [line.split(",")[0] for line in train] == [f"epoch {e}/2 step {s}/3" for e in (1, 2) for s in (1, 2, 3)]
    assert all(re.search(r", train/loss \d\.\d+.*, \d+\.\d\d it/s, 0:00 left$", line) for line in train), train
    assert [line.split(",")[0] for line in lines if line.startswith("validation")] == [
        "validation after epoch 1", "validation after epoch 2"]
    assert all("val/mse" in line and "train/loss" not in line for line in lines if line.startswith("validation"))
    assert [line.split(",")[0] for line in lines if line.startswith("test")] == [f"test step {s}/6" for s in range(1, 7)]


def test_lines_are_rate_limited_but_each_loop_ends_with_one():
    lines = _run(every_s=3600)
    starts = [line.split(",")[0] for line in lines]
    # the first step of each loop comes at once (< every_s after the start), so only the loops' last steps print
    assert starts == ["epoch 1/2 step 3/3", "validation after epoch 1", "epoch 2/2 step 3/3",
                      "validation after epoch 2", "test step 6/6"]


def test_a_terminal_gets_the_rich_bar(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert isinstance(terminal_progress_bar(), RichProgressBar)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    bar = terminal_progress_bar(every_s=5)
    assert isinstance(bar, PlainProgress) and bar.every_s == 5


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (65, "1:05"), (3725.2, "1:02:05"), (-3, "0:00")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("every_s, expected", [
    (3600, ["files 3/3, 0:00 left"]),  # rate-limited: only the finishing step prints
    (0, ["files 1/3", "files 2/3", "files 3/3"]),
])
def test_file_progress_prints_plain_lines_off_a_terminal(every_s, expected):
    from rich.console import Console

    from visionzoo.progress import FileProgress

    stream = io.StringIO()
    with FileProgress(console=Console(file=stream, force_terminal=False, width=200), every_s=every_s) as progress:
        files = progress.add_task("files", total=3)
        for _ in range(3):
            progress.advance(files)
    lines = [line for line in stream.getvalue().splitlines() if re.match(r"files \d", line)]  # not the bar's render
    assert (lines if every_s else [line.split(",")[0] for line in lines]) == expected
