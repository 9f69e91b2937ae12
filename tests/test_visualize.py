"""Charts drawn by matplotlib (curves against their own x, bars to scale, legends), and pictures reaching the
run's TensorBoard as well as its pictures/ folder."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visionzoo.tasks.pictures import publish_picture
from visionzoo.visualize import bar_plot, line_plot

BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two cycle colours


def _columns(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    """Column indices holding pixels close to ``rgb``."""
    close = np.abs(image.astype(int) - np.array(rgb)).sum(axis=2) < tolerance
    return np.flatnonzero(close.any(axis=0))


def test_line_plot_draws_each_curve_over_its_own_x():
    # blue spans x 0..1 of an axis that orange stretches to 0..10: blue covers about a tenth of orange's width
    image = line_plot({"short": [1.0, 2.0, float("nan")], "long": [0.0, 3.0]}, "t", "s", "dB",
                      x={"short": [0.0, 1.0, 2.0], "long": [0.0, 10.0]})
    assert image.shape == (360, 560, 3) and image.dtype == np.uint8
    blue, orange = _columns(image, BLUE), _columns(image, ORANGE)
    # the legend's sample lines add a short run of each colour: measure the plotted lines by their span
    ratio = (np.percentile(blue, 95) - blue.min()) / (orange.max() - orange.min())
    assert 0.05 < ratio < 0.2, ratio
    index_plot = line_plot({"a": [1.0, 2.0, 3.0]}, "t", "x", "y")  # no x: against the index
    assert len(_columns(index_plot, BLUE)) > 300


def test_bar_plot_draws_bars_to_scale_in_their_colours():
    image = bar_plot({"car": 1.0, "road": 0.5, "bus": float("nan")}, "IoU", "IoU",
                     colours=[(200, 0, 0), (0, 0, 200), (0, 200, 0)])
    assert len(_columns(image, (0, 200, 0), tolerance=30)) == 0  # a class that never occurs: no bar
    heights = []
    for rgb in [(200, 0, 0), (0, 0, 200)]:
        rows = np.flatnonzero((np.abs(image.astype(int) - np.array(rgb)).sum(axis=2) < 30).any(axis=1))
        heights.append(rows.max() - rows.min() + 1)
    assert abs(heights[1] / heights[0] - 0.5) < 0.03, heights


class _Drawing(L.LightningModule):
    def test_step(self, batch, batch_idx):
        pass

    def on_test_epoch_end(self):
        publish_picture(self, "grid", np.full((8, 12, 3), 200, np.uint8))


def test_pictures_go_to_the_folder_and_to_tensorboard(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = L.Trainer(default_root_dir=tmp_path, logger=logger, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.test(_Drawing(), dataloaders=torch.utils.data.DataLoader(torch.zeros(2, 1)), verbose=False)
    assert (tmp_path / "pictures" / "grid.png").exists()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["pictures/grid"]
    stored = events.Images("pictures/grid")[0]
    assert (stored.width, stored.height) == (12, 8)
