"""The three entry points as a user runs them: real subprocesses, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

pytestmark = pytest.mark.integration  # subprocesses / whole runs: make test runs them, make test-fast not


ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *overrides], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def small(tiny_dis: Path) -> list[str]:
    return [f"data.root={tiny_dis}", "data.input_size=64", "data.num_workers=0", "data.batch_size=2",
            "callbacks.rich_progress_bar=null"]


def test_train_eval_predict_round_trip(tiny_dis, tmp_path):
    trained = run("train.py", "experiment=ben_dis5k", "model=ben_tiny", "trainer.max_epochs=1",
                  "hydra.run.dir=run", *small(tiny_dis), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.exists()

    evaluated = run("eval.py", "experiment=ben_dis5k", "model=ben_tiny", f"ckpt_path={ckpt}", "hydra.run.dir=eval",
                    "task.save_predictions=masks", *small(tiny_dis), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    splits = [r["split"] for r in rows if r["model"] == "refined"]
    assert splits == ["DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4", "DIS-TE (1-4) mean"]
    assert list(rows[0])[:8] == ["split", "model", "maxFb", "wFb", "MAE", "Sa", "meanEm", "HCE"]
    assert all(0 <= r["MAE"] <= 1 for r in rows)
    assert (tmp_path / "eval" / "pictures" / "DIS-TE1.png").exists()
    saved = tmp_path / "masks" / "DIS-TE3" / "DIS-TE3_0000.png"
    gt = tiny_dis / "DIS5K" / "DIS-TE3" / "gt" / "DIS-TE3_0000.png"
    assert cv2.imread(str(saved), cv2.IMREAD_UNCHANGED).shape == cv2.imread(str(gt), cv2.IMREAD_UNCHANGED).shape

    predicted = run("predict.py", "experiment=ben_cutout", "model=ben_tiny", f"ckpt_path={ckpt}",
                    f"input={tiny_dis}/DIS5K/DIS-TE2/im", "output=cutouts", "predictor.input_size=64",
                    "hydra.run.dir=predict", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "cutouts").iterdir()) == ["DIS-TE2_0000_cutout.png",
                                                                          "DIS-TE2_0000_mask.png"]


def small_occ3d(tiny_occ3d: Path) -> list[str]:
    return [f"data.root={tiny_occ3d}", "data.synthetic=null", "data.input_size=[32,64]", "data.num_workers=0",
            "data.batch_size=1", "data.eval_batch_size=1"]


def test_dhd_train_eval_predict_round_trip(tiny_occ3d, tmp_path):
    trained = run("train.py", "experiment=dhd_synthetic", "trainer.max_epochs=1", "hydra.run.dir=run",
                  "callbacks.rich_progress_bar=null", *small_occ3d(tiny_occ3d), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"

    evaluated = run("eval.py", "experiment=dhd_synthetic", f"ckpt_path={ckpt}", "hydra.run.dir=eval",
                    *small_occ3d(tiny_occ3d), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert [r["class"] for r in rows][:2] == ["others", "barrier"] and rows[-1]["class"] == "mIoU"
    assert len(rows) == 18 and 0 <= rows[-1]["IoU"] <= 100
    assert "driveable_surface" in evaluated.stdout and "mIoU" in evaluated.stdout
    picture = cv2.imread(str(tmp_path / "eval" / "pictures" / "occupancy.png"))
    assert picture.shape[1] > 5 * 256  # five tiles and the legend

    predicted = run("predict.py", "experiment=dhd_occ3d", "model=dhd_tiny", "data=occ3d_synthetic", f"ckpt_path={ckpt}", f"input={tiny_occ3d}",
                    "output=occ", "data.input_size=[32,64]", "hydra.run.dir=predict", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    written = sorted((tmp_path / "occ").glob("*/*/labels.npz"))
    assert len(written) == 1 and written[0].parts[-3] == "synthetic-val-0000"
    with np.load(written[0]) as data:
        assert data.files == ["semantics"] and data["semantics"].shape == (50, 50, 16)
        assert data["semantics"].dtype == np.uint8 and data["semantics"].max() <= 17
    assert len(list((tmp_path / "occ" / "pictures").glob("*.png"))) == 1
    again = run("predict.py", "experiment=dhd_occ3d", "model=dhd_tiny", "data=occ3d_synthetic", f"ckpt_path={ckpt}", f"input={tiny_occ3d}",
                "output=occ", "data.input_size=[32,64]", "hydra.run.dir=predict", cwd=tmp_path)
    assert "0 processed, 1 already done" in again.stderr


@pytest.mark.slow  # BEN2 (94 M parameters) at 256-384 px: about two minutes on 2 cores
def test_ben2_base_predict_eval_and_fine_tune_from_the_published_file(ben2_published_weights, tiny_dis, tmp_path):
    weights = ben2_published_weights["pth"]
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "coffee.png"), skimage.data.coffee()[:, :, ::-1])  # 600 x 400 RGB
    predicted = run("predict.py", "experiment=ben_cutout", "model=ben2_base", f"ckpt_path={weights}",
                    f"input={photos}", "output=cutouts", "predictor.input_size=256", "predictor.refine_foreground=true",
                    "hydra.run.dir=predict", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    mask = cv2.imread(str(tmp_path / "cutouts" / "coffee_mask.png"), cv2.IMREAD_UNCHANGED)
    cutout = cv2.imread(str(tmp_path / "cutouts" / "coffee_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (400, 600) and (mask.min(), mask.max()) == (0, 255)  # min-max stretched
    assert cutout.shape == (400, 600, 4) and np.array_equal(cutout[..., 3], mask)
    soft = (mask > 20) & (mask < 235)
    assert soft.any() and np.abs(cutout[..., :3][soft].astype(int) - skimage.data.coffee()[:, :, ::-1][soft]).max() > 0

    small_dis = [f"data.root={tiny_dis}", "data.num_workers=0", "data.batch_size=1", "data.eval_batch_size=2",
                 "callbacks.rich_progress_bar=null"]
    evaluated = run("eval.py", "experiment=ben_dis5k", "model=ben2_base", f"ckpt_path={weights}", "data.input_size=256",
                    "hydra.run.dir=eval", *small_dis, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {r["model"] for r in rows} == {"base"} and len(rows) == 6  # no Refiner: the Base's rows only

    tune = ["train.py", "experiment=ben_dis5k", "model=ben2_base", f"model.pretrained={weights}",
            "data.input_size=384", "task.freeze=[backbone]", "trainer.limit_val_batches=1", "hydra.run.dir=run",
            *small_dis]
    trained = run(*tune, "trainer.max_steps=1", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    tuned, published = checkpoint["state_dict"], torch.load(weights, weights_only=True)["model_state_dict"]
    assert all(torch.equal(tuned[f"net.{k}"], v) for k, v in published.items() if k.startswith("backbone."))
    assert not torch.equal(tuned["net.output.0.weight"], published["output.0.weight"])  # the decoder learnt
    state = checkpoint["optimizer_states"][0]["state"]
    assert len(state) == sum(1 for k in published if not k.startswith("backbone.") and "relative_position" not in k)

    resumed = run(*tune, "trainer.max_steps=2", "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert again["global_step"] == 2 and again["optimizer_states"][0]["state"][0]["step"] == 2



def released_dhd_round_trip(model: str, weights: Path, root: Path, tmp_path: Path, data: list[str],
                            geometry: list[str] = (), tune: list[str] = ()) -> tuple[list[Path], dict, dict]:
    """A published DHD from a released-form file through eval.py, predict.py, the predictions evaluator and one
    fine-tuning step (``data``: the data overrides; ``geometry``: those predict.py and the evaluator need too).
    Checks that each runs and that the evaluator gives eval.py's mIoU from predict.py's files; returns the written
    labels files and the tuned and released state dicts."""
    evaluated = run("eval.py", "experiment=dhd_occ3d", f"model={model}", f"ckpt_path={weights}", "hydra.run.dir=eval",
                    "callbacks.rich_progress_bar=null", *data, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    rows = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert rows[-1]["class"] == "mIoU" and len(rows) == 18

    predicted = run("predict.py", "experiment=dhd_occ3d", f"model={model}", f"ckpt_path={weights}", f"input={root}",
                    "output=occ", "predictor.pictures=1", "hydra.run.dir=predict", *geometry, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    scored = run("eval.py", "experiment=occ3d_predictions", f"pred_root={tmp_path / 'occ'}", f"data.root={root}",
                 "hydra.run.dir=scored", *geometry[:1], cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-2000:]
    again = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert again[-1]["IoU"] == pytest.approx(rows[-1]["IoU"], abs=1e-9)  # predict.py and eval.py see the same

    trained = run("train.py", "experiment=dhd_occ3d", f"model={model}", f"model.pretrained={weights}",
                  "trainer.max_steps=1", "trainer.limit_val_batches=1", "hydra.run.dir=run",
                  "callbacks.rich_progress_bar=null", *tune, *data, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    tuned = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuned["global_step"] == 1
    return (sorted((tmp_path / "occ").glob("*/*/labels.npz")), tuned["state_dict"],
            torch.load(weights, weights_only=True)["state_dict"])


@pytest.mark.slow  # DHD-S (147 M parameters) on six 256 x 704 cameras: about two minutes on 2 cores
def test_dhd_s_eval_predict_and_fine_tune_from_the_released_checkpoint(dhd_s_released_checkpoint, occ3d_full_grid,
                                                                      tmp_path):
    data = [f"data.root={occ3d_full_grid}", "data.num_workers=0", "data.batch_size=1", "data.eval_batch_size=1"]
    written, tuned, released = released_dhd_round_trip("dhd_s", dhd_s_released_checkpoint, occ3d_full_grid,
                                                       tmp_path, data)
    with np.load(written[0]) as labels:
        assert len(written) == 1 and labels["semantics"].shape == (200, 200, 16)
    assert not torch.equal(tuned["net.occ_head.predicter.2.weight"], released["occ_head.predicter.2.weight"])


@pytest.mark.slow  # DHD-M (199 M parameters) on three frames of six 32 x 64 cameras: about 70 s on 2 cores
def test_dhd_m_eval_predict_and_fine_tune_on_built_in_sequences(dhd_m_released_checkpoint, tiny_occ3d_sequences,
                                                                tmp_path):
    """The published DHD-M from a released-form file on the synthetic sequences (three frames per sample, their
    grid), with the published recipe's depth loss when fine-tuning."""
    geometry = ["data.grid={x_range:[-20,20],y_range:[-20,20],z_range:[-1,5.4],voxel:[0.8,0.8,0.4]}",
                "data.input_size=[32,64]"]
    data = [f"data.root={tiny_occ3d_sequences}", *geometry, "data.num_workers=0", "data.batch_size=1",
            "data.eval_batch_size=1"]
    written, tuned, released = released_dhd_round_trip("dhd_m", dhd_m_released_checkpoint, tiny_occ3d_sequences,
                                                       tmp_path, data, geometry, ["task.loss_weights.depth=0.05"])
    assert len(written) == 3 and {p.parts[-3] for p in written} == {"synthetic-val-0000"}
    for key in ("occ_head.predicter.2.weight", "img_view_transformer.depth_net.cost_volumn_net.0.weight",
                "pre_process_net_3d.layers.0.0.conv1.weight"):
        assert not torch.equal(tuned[f"net.{key}"], released[key]), key
