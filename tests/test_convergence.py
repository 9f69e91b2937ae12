"""Slow convergence runs: the demo recipes must reach their documented quality on the CPU."""

from __future__ import annotations

import pytest

from visionzoo import runner
from tests.test_configs import compose_config


@pytest.mark.slow
def test_ben_synthetic_converges(tmp_path):
    """Tiny BEN on the synthetic DIS5K (about 10 CPU minutes): val maxFb >= 0.90, MAE <= 0.05, and the Refiner
    improves wFb or HCE over the Base alone."""
    cfg = compose_config("train", ["experiment=ben_synthetic", "callbacks.rich_progress_bar=null"], tmp_path)
    metrics = runner.train(cfg)
    print({k: round(v, 4) for k, v in metrics.items() if k.startswith("val")})
    assert metrics["val/maxFb"] >= 0.90
    assert metrics["val/MAE"] <= 0.05
    assert metrics["val/wFb"] > metrics["val/base/wFb"] or metrics["val/HCE"] < metrics["val/base/HCE"]
