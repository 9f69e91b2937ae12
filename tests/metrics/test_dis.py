"""DIS metrics: hand-made masks, parity with pysodmetrics' own accumulation, the HCE protocol and cache."""

from __future__ import annotations

import cv2
import numpy as np
import py_sod_metrics
import pytest

from visionzoo.metrics.dis import DISMetrics, ben_paper_scores, score_image


def _disk_mask(size=64, radius=20, center=(32, 32)) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, center, radius, 255, -1)
    return mask


def test_perfect_prediction():
    gt = _disk_mask()
    metric = DISMetrics()
    metric.update([gt.copy()], [gt])
    result = metric.compute()
    assert result["MAE"] == 0.0
    assert result["maxFb"] == pytest.approx(1.0, abs=1e-6)
    assert result["wFb"] == pytest.approx(1.0, abs=1e-6)
    assert result["Sa"] == pytest.approx(1.0, abs=1e-6)
    assert result["maxEm"] == pytest.approx(1.0, abs=1e-3)  # pysodmetrics' EPS terms: 1.00024
    assert result["HCE"] == 0.0


def test_hand_computed_mae_and_inverted_prediction():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :5] = 255  # half foreground
    metric = DISMetrics()
    metric.update([np.zeros_like(gt)], [gt])  # predicts nothing
    assert metric.compute()["MAE"] == pytest.approx(0.5)
    metric.reset()
    metric.update([255 - gt], [gt])  # predicts exactly the background
    result = metric.compute()
    assert result["MAE"] == pytest.approx(1.0)
    assert result["HCE"] > 0


def test_dataset_mean_curve_matches_pysodmetrics():
    rng = np.random.default_rng(0)
    gts = [_disk_mask(radius=r) for r in (10, 15, 25)]
    preds = [np.clip(cv2.GaussianBlur(g, (9, 9), 3).astype(int) + rng.integers(-40, 40, g.shape), 0, 255).astype(np.uint8)
             for g in gts]
    fm, em, wfm, sm, mae = (py_sod_metrics.Fmeasure(), py_sod_metrics.Emeasure(), py_sod_metrics.WeightedFmeasure(),
                            py_sod_metrics.Smeasure(), py_sod_metrics.MAE())
    for pred, gt in zip(preds, gts):
        for m in (fm, em, wfm, sm, mae):
            m.step(pred, gt)
    metric = DISMetrics()
    metric.update(preds[:2], gts[:2])
    metric.update(preds[2:], gts[2:])
    result = metric.compute()
    assert result["maxFb"] == pytest.approx(fm.get_results()["fm"]["curve"].max(), rel=1e-9)
    assert result["meanEm"] == pytest.approx(em.get_results()["em"]["curve"].mean(), rel=1e-9)
    assert result["maxEm"] == pytest.approx(em.get_results()["em"]["curve"].max(), rel=1e-9)
    assert result["wFb"] == pytest.approx(wfm.get_results()["wfm"], rel=1e-9)
    assert result["Sa"] == pytest.approx(sm.get_results()["sm"], rel=1e-9)
    assert result["MAE"] == pytest.approx(mae.get_results()["mae"], rel=1e-9)


def test_hce_binarises_raw_prediction_at_128():
    gt = _disk_mask()
    faint = (gt > 0).astype(np.uint8) * 100  # below 128 everywhere: nothing predicted under the DIS protocol
    hce_faint = score_image(faint, gt)["hce"]
    hce_empty = score_image(np.zeros_like(gt), gt)["hce"]
    assert hce_faint == hce_empty > 0
    # pysodmetrics' default (min-max stretch) would have seen a perfect mask:
    stretched = py_sod_metrics.HumanCorrectionEffortMeasure(relax=5, epsilon=2.0)
    stretched.step(faint, gt)
    assert stretched.get_results()["hce"] == 0


def test_skeleton_cache_gives_identical_hce(tmp_path):
    gt = _disk_mask()
    cv2.line(gt, (0, 0), (63, 10), 255, 2)
    gt_path = tmp_path / "gt.png"
    cv2.imwrite(str(gt_path), gt)
    pred = np.roll(gt, 3, axis=1)
    plain = DISMetrics()
    plain.update([pred], [gt])
    cached = DISMetrics(skeleton_dir=tmp_path / "ske")
    cached.update([pred], [gt], [str(gt_path)])
    cached.update([pred], [gt], [str(gt_path)])  # second time from the cache file
    assert len(list((tmp_path / "ske").glob("*.png"))) == 1
    assert cached.compute()["HCE"] == plain.compute()["HCE"] > 0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="resize the prediction first"):
        score_image(np.zeros((4, 4), np.uint8), np.zeros((5, 5), np.uint8))


def test_hce_counts_a_pixel_of_exactly_128_as_background():
    """The DIS authors' code binarises at > 128: a mask drawn at 128 predicts nothing, at 129 the object."""
    gt = _disk_mask()
    at_128, at_129 = ((gt > 0) * 128).astype(np.uint8), ((gt > 0) * 129).astype(np.uint8)
    assert score_image(at_128, gt)["hce"] == score_image(np.zeros_like(gt), gt)["hce"] > 0
    assert score_image(at_129, gt)["hce"] == score_image(gt, gt)["hce"] == 0


def test_mean_curves_are_indexed_by_threshold():
    """The F curve at threshold t is the F-measure of ``pred >= t`` against the GT (computed here by hand), for a
    prediction spanning 0..255 (pysodmetrics stretches a prediction to that range first)."""
    gt = np.zeros((16, 16), np.uint8)
    gt[:, :8] = 255
    pred = np.where(gt > 0, 200, 50).astype(np.uint8)
    pred[:4, 8:] = 120  # some background above 50
    pred[0, 0], pred[15, 15] = 255, 0  # the full range: no stretching

    def f_measure(t: int) -> float:
        hit, fg = pred >= t, gt > 128
        tp = float((hit & fg).sum())
        precision, recall = tp / max(hit.sum(), 1), tp / fg.sum()
        return 0.0 if tp == 0 else 1.3 * precision * recall / (0.3 * precision + recall)

    metric = DISMetrics()
    metric.update([pred, pred], [gt, gt])
    values = metric.compute()
    f = metric.mean_curves["F"]
    assert f.shape == metric.mean_curves["E"].shape == (256,)
    for t in (0, 1, 50, 51, 120, 121, 200, 201, 255):
        assert f[t] == pytest.approx(f_measure(t), abs=1e-3), t
    assert values["maxFb"] == pytest.approx(f.max()) and values["meanEm"] == pytest.approx(metric.mean_curves["E"].mean())


def test_ben_paper_metrics_by_hand():
    """PramaLLC/BEN test.py's definitions on a 4 x 4 case (two copies of two rows; size 4: no resize)."""
    gt = np.array([[255, 255, 0, 0], [255, 255, 0, 0]] * 2, np.uint8)
    pred = np.array([[255, 128, 127, 0], [255, 0, 0, 64]] * 2, np.uint8)
    scores = ben_paper_scores(pred, gt, size=4)
    assert scores["ben_mae"] == pytest.approx((127 + 127 + 255 + 64) / 255 / 8, rel=1e-6)
    assert scores["dice"] == pytest.approx(2 * 638 / (4 * 255 + 829), rel=1e-5)  # soft: sum(g p) = 638 / 255
    assert scores["iou"] == pytest.approx(3 / 4, rel=1e-6)  # 128 / 255 > 0.5 counts, 127 / 255 does not
    assert scores["ber"] == pytest.approx(1 - (3 / 4 + 4 / 4) / 2, rel=1e-6)
    assert scores["acc"] == pytest.approx(7 / 8, rel=1e-6)


def test_ben_paper_metrics_resize_the_prediction_bilinear_and_the_truth_nearest():
    gt = np.array([[255, 0], [0, 0]], np.uint8)  # nearest to 4 x 4: a 2 x 2 block of foreground
    scores = ben_paper_scores(np.full((2, 2), 255, np.uint8), gt, size=4)
    assert scores["dice"] == pytest.approx(2 * 4 / (4 + 16), rel=1e-5)
    assert scores["iou"] == pytest.approx(4 / 16, abs=1e-6)
    # Bilinear x3 weights per axis 1, 1, 2/3, 1/3, 0, 0: 8 of 36 pixels reach 0.5 (nearest would give 9).
    soft = ben_paper_scores(np.array([[255, 0], [0, 0]], np.uint8), np.full((2, 2), 255, np.uint8), size=6)
    assert soft["acc"] == pytest.approx(8 / 36)


def test_dataset_reports_the_ben_metrics_as_image_means():
    gt = _disk_mask()
    empty = np.zeros_like(gt)
    metric = DISMetrics()
    metric.update([gt.copy(), empty], [gt, gt])
    result = metric.compute()
    perfect, nothing = ben_paper_scores(gt, gt), ben_paper_scores(empty, gt)
    for column, name in (("benMAE", "ben_mae"), ("Dice", "dice"), ("IoU", "iou"), ("BER", "ber"), ("Acc", "acc")):
        assert result[column] == pytest.approx((perfect[name] + nothing[name]) / 2, rel=1e-12), column
    # At 1024 x 1024 the bilinear prediction and the nearest ground truth differ along the disk's edge.
    assert 0.95 < perfect["iou"] < 1 and nothing["iou"] < 1e-9 and nothing["ber"] == pytest.approx(0.5)
