"""Scoring other models' Occ3D predictions: the benchmark's mIoU with and without the camera mask, both layouts,
problems listed by token."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import visionzoo
from tests.helpers.configs import compose_config, small_data_overrides
from visionzoo.run import jobs
from visionzoo.constants import OCC3D_CLASSES, OCC3D_FREE
from visionzoo.errors import DataError
from visionzoo.evaluate.occ3d_predictions import Occ3DPredictionsEvaluator

REAL_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "occ3d-sample"
SYNTHETIC_GRID = {"x_range": [-20.0, 20.0], "y_range": [-20.0, 20.0], "z_range": [-1.0, 5.4], "voxel": [0.8, 0.8, 0.4]}


def test_scoring_the_zoos_predictions_equals_its_evaluation(tiny_occ3d, tmp_path):
    data = small_data_overrides("Occ3DDataModule", tiny_dis=None, tiny_occ3d=tiny_occ3d)
    net = visionzoo.create_model("dhd_tiny", grid=SYNTHETIC_GRID, depth_bins=[1.0, 29.0, 1.0])
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "dhd.ckpt")
    weights = f"ckpt_path={tmp_path / 'dhd.ckpt'}"  # random weights, the same on both sides
    evaluated = jobs.evaluate(compose_config("eval", ["experiment=dhd_synthetic", "callbacks.rich_progress_bar=null",
                                                        "task.pictures=0", weights, *data], tmp_path / "eval"))
    predict_cfg = compose_config("predict", ["experiment=dhd_occ3d", "model=dhd_tiny", f"input={tiny_occ3d}",
                                             f"output={tmp_path / 'preds'}", "predictor.pictures=0", weights, *data],
                                 tmp_path / "predict")
    jobs.predict(predict_cfg)
    scored = Occ3DPredictionsEvaluator(str(tmp_path / "preds"), str(tiny_occ3d), grid=SYNTHETIC_GRID).run()
    assert [r["class"] for r in scored] == [*OCC3D_CLASSES[:OCC3D_FREE], "mIoU"] and scored[-1]["samples"] == 1
    for ours, theirs in zip(scored, evaluated):
        assert ours["class"] == theirs["class"]
        assert ours["IoU"] == pytest.approx(theirs["IoU"], abs=1e-9, nan_ok=True)


@pytest.mark.skipif(not REAL_SAMPLE.is_dir(), reason="the real Occ3D frame lives in ../shared/data (not in a clone)")
def test_the_real_occ3d_frame_scored_by_hand(tmp_path):
    truth_path = next(REAL_SAMPLE.rglob("labels.npz"))
    token = truth_path.parent.name
    with np.load(truth_path) as data:
        truth, visible = data["semantics"], data["mask_camera"] > 0
    pred = truth.copy()
    cars = truth == 4
    pred[cars] = OCC3D_FREE  # every car voxel predicted free
    np.savez_compressed(tmp_path / f"{token}.npz", semantics=pred)  # the flat <token>.npz layout
    rows = {r["class"]: r for r in Occ3DPredictionsEvaluator(str(tmp_path), str(REAL_SAMPLE)).run()}
    assert rows["car"]["IoU"] == 0.0 and rows["car"]["IoU (all voxels)"] == 0.0
    present = [c for c in range(OCC3D_FREE) if (truth[visible] == c).any()]
    expected = np.mean([0.0 if c == 4 else 100.0 for c in present])  # every other present class is exact
    assert rows["mIoU"]["IoU"] == pytest.approx(expected)
    assert np.isnan(rows["bicycle"]["IoU"])  # no bicycle in the frame: left out of the mean, as the benchmark does


def write_predictions(tiny_occ3d: Path, target: Path) -> list[str]:
    """The validation ground truth as predictions in Occ3D's layout; returns the tokens."""
    tokens = []
    for labels in sorted((tiny_occ3d / "gts").rglob("labels.npz")):
        if "val" not in labels.parts[-3]:
            continue
        (target / labels.parts[-3] / labels.parts[-2]).mkdir(parents=True)
        with np.load(labels) as data:
            np.savez_compressed(target / labels.parts[-3] / labels.parts[-2] / "labels.npz", semantics=data["semantics"])
        tokens.append(labels.parts[-2])
    return tokens


def test_missing_extra_and_broken_predictions_are_listed_by_token(tiny_occ3d, tmp_path):
    preds = tmp_path / "preds"
    token = write_predictions(tiny_occ3d, preds)[0]
    perfect = Occ3DPredictionsEvaluator(str(preds), str(tiny_occ3d), grid=SYNTHETIC_GRID).run()
    assert perfect[-1]["IoU"] == pytest.approx(100.0) and perfect[-1]["IoU (all voxels)"] == pytest.approx(100.0)
    np.savez_compressed(preds / "stray.npz", semantics=np.zeros((50, 50, 16), np.uint8))
    with pytest.raises(DataError, match=r"preds: 1 predictions of unknown samples \(stray\); fix them or set "
                                        r"on_missing=skip"):
        Occ3DPredictionsEvaluator(str(preds), str(tiny_occ3d), grid=SYNTHETIC_GRID).run()
    (preds / "stray.npz").unlink()
    labels = next(preds.rglob("labels.npz"))
    np.savez_compressed(labels, semantics=np.zeros((50, 50, 8), np.uint8))
    with pytest.raises(DataError, match=rf"1 predictions cannot be scored \({token}: shape \(50, 50, 8\), not "
                                        r"\(50, 50, 16\)\)"):
        Occ3DPredictionsEvaluator(str(preds), str(tiny_occ3d), grid=SYNTHETIC_GRID).run()
    shutil.rmtree(labels.parent)
    with pytest.raises(DataError, match=rf"1 samples without a prediction \({token}\)"):
        Occ3DPredictionsEvaluator(str(preds), str(tiny_occ3d), grid=SYNTHETIC_GRID).run()
    with pytest.raises(DataError, match="no prediction in .* could be scored"):
        Occ3DPredictionsEvaluator(str(preds), str(tiny_occ3d), grid=SYNTHETIC_GRID, on_missing="skip").run()
