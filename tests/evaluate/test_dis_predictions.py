"""Scoring other models' DIS prediction folders: the same numbers as model evaluation, clear reports of bad files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.configs import compose_config
from visionzoo.run import jobs
from visionzoo.errors import DataError
from visionzoo.evaluate.dis_predictions import DISPredictionsEvaluator

SPLITS = ["DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4"]


def gt_only_copy(tiny_dis: Path, target: Path) -> Path:
    """The DIS5K test splits without their im/ folders: the evaluator needs the ground truth only."""
    for split in SPLITS:
        shutil.copytree(tiny_dis / "DIS5K" / split / "gt", target / "DIS5K" / split / "gt")
    return target


def test_scores_equal_the_evaluation_that_wrote_the_predictions(tiny_dis, tmp_path):
    overrides = ["experiment=ben_dis5k", "model=ben_tiny", f"data.root={tiny_dis}", "data.input_size=64",
                 "data.num_workers=0", f"task.save_predictions={tmp_path / 'preds'}", "task.pictures=0",
                 "callbacks.rich_progress_bar=null"]
    cfg = compose_config("eval", overrides, tmp_path / "eval")
    cfg.model.pretrained = None
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.weights_required = False  # random weights are enough: both sides score the same masks
    evaluated = [row for row in jobs.evaluate(cfg) if row["model"] == "refined"]

    scored = jobs.evaluate(compose_config("eval", [
        "experiment=dis_predictions", f"pred_root={tmp_path / 'preds'}",
        f"data.root={gt_only_copy(tiny_dis, tmp_path / 'gt_only')}"], tmp_path / "scored"))
    assert [r["split"] for r in scored] == [r["split"] for r in evaluated]
    for ours, theirs in zip(scored, evaluated):
        for key in ("maxFb", "wFb", "MAE", "Sa", "meanEm", "maxEm", "HCE", "benMAE", "Dice", "IoU", "BER", "Acc"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-12), (ours["split"], key)
    assert scored[0]["model"] == "preds" and scored[0]["images"] == 2 and scored[-1]["images"] == 4
    assert (tmp_path / "scored" / "metrics.csv").read_text().startswith(
        "split,model,maxFb,wFb,MAE,Sa,meanEm,HCE,maxEm,benMAE,Dice,IoU,BER,Acc,images")


def perfect_predictions(tiny_dis: Path, target: Path, scale: float = 1.0) -> Path:
    """The ground truths as predictions (resized by ``scale``)."""
    for split in SPLITS:
        (target / split).mkdir(parents=True)
        for gt in sorted((tiny_dis / "DIS5K" / split / "gt").iterdir()):
            mask = cv2.imread(str(gt), cv2.IMREAD_GRAYSCALE)
            size = (round(mask.shape[1] * scale), round(mask.shape[0] * scale))
            cv2.imwrite(str(target / split / gt.name), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))
    return target


@pytest.mark.parametrize("workers", [1, 2])
def test_perfect_predictions_score_perfectly_and_other_sizes_are_resized(tiny_dis, tmp_path, workers):
    rows = DISPredictionsEvaluator(str(perfect_predictions(tiny_dis, tmp_path / "p")), str(tiny_dis),
                                   workers=workers).run()
    assert all(r["maxFb"] == pytest.approx(1.0) and r["MAE"] == 0.0 and r["HCE"] == 0.0 for r in rows)
    halved = DISPredictionsEvaluator(str(perfect_predictions(tiny_dis, tmp_path / "h", 0.5)), str(tiny_dis)).run()
    assert all(0 < r["MAE"] < 0.1 and r["maxFb"] > 0.8 for r in halved)  # scored at the GT's size after resizing


def test_missing_extra_and_unreadable_predictions_are_listed_in_one_line_or_skipped(tiny_dis, tmp_path, caplog):
    preds = perfect_predictions(tiny_dis, tmp_path / "p")
    (preds / "DIS-VD" / "DIS-VD_0000.png").unlink()
    (preds / "DIS-VD" / "stray.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    (preds / "DIS-VD" / "DIS-VD_0001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"DIS-VD: 1 ground truths without a prediction \(DIS-VD_0000\); 1 predictions "
                                        r"without a ground truth \(stray\); 1 unreadable predictions "
                                        r"\(DIS-VD_0001.png\); fix them or set on_missing=skip"):
        DISPredictionsEvaluator(str(preds), str(tiny_dis)).run()
    (preds / "DIS-VD" / "DIS-VD_0001.png").unlink()
    shutil.copy(tiny_dis / "DIS5K" / "DIS-VD" / "gt" / "DIS-VD_0001.png", preds / "DIS-VD")
    shutil.rmtree(preds / "DIS-TE4")
    with caplog.at_level(logging.WARNING):
        rows = DISPredictionsEvaluator(str(preds), str(tiny_dis), on_missing="skip").run()
    assert [(r["split"], r["images"]) for r in rows] == [("DIS-VD", 1), ("DIS-TE1", 1), ("DIS-TE2", 1), ("DIS-TE3", 1),
                                                         ("DIS-TE (1-3) mean", 3)]
    assert "DIS-TE4: no DIS-TE4/ in pred_root" in caplog.text and "1 ground truths without a prediction" in caplog.text


def test_a_pred_root_without_split_folders_is_one_clear_error(tiny_dis, tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="pred_root must hold folders named like DIS-VD/"):
        DISPredictionsEvaluator(str(tmp_path / "flat"), str(tiny_dis)).run()
    with pytest.raises(DataError, match="pred_root /no/such is not a folder"):
        DISPredictionsEvaluator("/no/such", str(tiny_dis))
