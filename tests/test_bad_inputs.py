"""The bad-input suite: each entry point (train, eval, predict) x task (BEN, DHD, DIP) given a user's mistake.

A mistake ends in one ``error:`` line naming the file or key and the fix, exit status 2, no traceback, and no file
added to or changed in the output folder. A per-file fault in batch work (predict) is reported, the rest is
processed, and nothing half-written is left. docs/errors.md lists every case here (checked below).

Each case is its command line, run by ``tests/helpers/command_batch.py``: the cases are dealt into two
subprocesses that run theirs one after another, importing torch and Lightning once each instead of once per case.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.integration  # subprocesses / whole runs: make test runs them, make test-fast not

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "errors.md"

BEN = ["experiment=ben_dis5k", "model=ben_tiny", "data.root={dis}", "data.input_size=64", "data.num_workers=0",
       "data.batch_size=2", "trainer.max_epochs=1", "callbacks.rich_progress_bar=null"]
BEN_PREDICT = ["experiment=ben_cutout", "model=ben_tiny", "predictor.input_size=64", "input={photos}", "output=out"]
BEN2 = ["model=ben2_base" if arg == "model=ben_tiny" else arg for arg in BEN]
BEN2_PREDICT = ["experiment=ben_cutout", "model=ben2_base", "input={photos}", "output=out"]
DIS_PREDICTIONS = ["experiment=dis_predictions", "data.root={dis}"]
OCC3D_PREDICTIONS = ["experiment=occ3d_predictions", "data.root={occ}",
                     "data.grid={{x_range: [-20.0, 20.0], y_range: [-20.0, 20.0], z_range: [-1.0, 5.4], "
                     "voxel: [0.8, 0.8, 0.4]}}"]  # (braces doubled: the arguments go through str.format)
DHD = ["experiment=dhd_synthetic", "data.root={occ}", "data.synthetic=null", "data.input_size=[32,64]",
       "data.num_workers=0", "data.batch_size=1", "data.eval_batch_size=1", "trainer.max_epochs=1",
       "callbacks.rich_progress_bar=null"]
# the synthetic worlds' grid: the model is built on data.grid
DHD_PREDICT = ["experiment=dhd_occ3d", "model=dhd_tiny", "data=occ3d_synthetic", "data.input_size=[32,64]", "input={occ}",
               "output=out"]
DISTILL = ["experiment=ben_distill", "model=ben_tiny", "teacher=ben", "teacher.name=ben_tiny", "teacher.weights=ben.ckpt",
           "data.root={dis}/DIS5K/DIS-TR/im", "data.input_size=64", "data.num_workers=0", "data.batch_size=2",
           "trainer.max_epochs=1", "callbacks.rich_progress_bar=null"]
DIP = ["experiment=dip_denoise", "data.root={clean}", "data.size=32", "task.fit.iterations=10"]
DIP_PREDICT = ["experiment=dip_denoise", "task.fit.iterations=10", "input={photos}", "output=out"]


@dataclass(frozen=True)
class Case:
    id: str
    script: str
    args: tuple[str, ...]
    message: str  # the start of the last stderr line; {w} is the case's working folder
    batch: bool = False  # a per-file fault in batch work: reported, the rest processed, exit 0


def case(id: str, script: str, base: list[str], *overrides: str, message: str, batch: bool = False) -> Case:
    return Case(id, script, (*base, *overrides), message, batch)


CASES = [
    # missing data root / input
    case("train-ben-missing-root", "train.py", BEN, "data.root=/no/such/dis5k",
         message="error: DIS5K root /no/such/dis5k does not exist; set data.root"),
    case("eval-ben-missing-root", "eval.py", BEN, "data.root=/no/such/dis5k", "ckpt_path=ben.ckpt",
         message="error: DIS5K root /no/such/dis5k does not exist; set data.root"),
    case("predict-ben-missing-input", "predict.py", BEN_PREDICT, "input=/no/photos",
         message="error: input /no/photos does not exist; pass an image file, a folder or a quoted glob"),
    case("train-dhd-missing-root", "train.py", DHD, "data.root=/no/such/nuscenes",
         message="error: data root /no/such/nuscenes not found; set data.root to the nuScenes folder"),
    case("train-dhd-unset-root", "train.py", ["experiment=dhd_occ3d", "data.root=null"],
         message="error: data.root is not set"),
    case("eval-dhd-missing-root", "eval.py", DHD, "data.root=/no/such/nuscenes", "ckpt_path=dhd.ckpt",
         message="error: data root /no/such/nuscenes not found; set data.root to the nuScenes folder"),
    case("eval-dis-predictions-missing-root", "eval.py", DIS_PREDICTIONS, "pred_root=/no/preds",
         message="error: pred_root /no/preds is not a folder; pass the folder holding DIS-VD/, DIS-TE1/ ..."),
    case("predict-dhd-missing-input", "predict.py", DHD_PREDICT, "input=/no/such/nuscenes",
         message="error: data root /no/such/nuscenes not found; set input to the nuScenes folder"),
    case("predict-dhd-no-info-file", "predict.py", DHD_PREDICT, "input=.",
         message="error: info file bevdetv2-nuscenes_infos_val.pkl not found; point input at the folder"),
    case("train-dip", "train.py", DIP, message="error: experiment dip_denoise has nothing to train"),
    case("eval-dip-missing-root", "eval.py", DIP, "data.root=/no/clean",
         message="error: clean image folder /no/clean does not exist; set data.root to a folder of images"),
    case("predict-dip-missing-input", "predict.py", DIP_PREDICT, "input=/no/photos",
         message="error: input /no/photos does not exist"),
    case("predict-missing-input-output", "predict.py", ["experiment=ben_cutout"],
         message="error: missing values for input, output: pass input=... output=..."),
    # empty split / folder
    case("train-ben-empty-split", "train.py", BEN, "data.root=dis_empty",
         message="error: dis_empty/DIS5K/DIS-TR has no image/mask pairs; check data.root points at DIS5K"),
    case("eval-dhd-empty-split", "eval.py", DHD, "data.root=occ_empty", "ckpt_path=dhd.ckpt",
         message="error: info file occ_empty/bevdetv2-nuscenes_infos_val.pkl has no samples"),
    case("predict-dhd-empty-split", "predict.py", DHD_PREDICT, "input=occ_empty",
         message="error: info file occ_empty/bevdetv2-nuscenes_infos_val.pkl has no samples"),
    case("eval-dip-empty-folder", "eval.py", DIP, "data.root=empty",
         message="error: no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp) in empty; set data.root"),
    case("predict-ben-empty-folder", "predict.py", BEN_PREDICT, "input=empty",
         message="error: no image or video files (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp, .mp4, .mov, .avi, "
                 ".mkv, .webm, .m4v) found at empty"),
    case("eval-dis-predictions-no-splits", "eval.py", DIS_PREDICTIONS, "pred_root=empty",
         message="error: no split of DIS-VD, DIS-TE1, DIS-TE2, DIS-TE3, DIS-TE4 has both predictions in empty and "
                 "ground truth in dis/DIS5K; pred_root must hold folders named like DIS-VD/"),
    case("predict-dip-empty-folder", "predict.py", DIP_PREDICT, "input=empty",
         message="error: no image files (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp) found at empty"),
    case("eval-dis-predictions-missing-files", "eval.py", DIS_PREDICTIONS, "pred_root=preds_missing",
         message="error: preds_missing/DIS-VD: 1 ground truths without a prediction (DIS-VD_0000); 1 predictions "
                 "without a ground truth (stray); fix them or set on_missing=skip to score the rest"),
    case("eval-occ3d-predictions-missing", "eval.py", OCC3D_PREDICTIONS, "pred_root=empty",
         message="error: empty: 1 samples without a prediction ({val}); fix them or set on_missing=skip to score "
                 "the rest"),
    case("eval-occ3d-predictions-wrong-shape", "eval.py", OCC3D_PREDICTIONS, "pred_root=occ_preds_shape",
         message="error: occ_preds_shape: 1 predictions cannot be scored ({val}: shape (50, 50, 8), not (50, 50, 16)); "
                 "fix them or set on_missing=skip"),
    # image / mask (label) size mismatch
    case("train-ben-size-mismatch", "train.py", BEN, "data.root=dis_size",
         message="error: dis_size/DIS5K/DIS-TR: 1 image/mask size mismatches (DIS-TR_0000 "),
    case("eval-dhd-label-shape", "eval.py", DHD, "data.root=occ_shape", "ckpt_path=dhd.ckpt",
         message="error: sample {val}: occ_shape/gts/synthetic-val-0000/{val}/labels.npz: semantics has shape"),
    # corrupt JPEG / PNG
    case("eval-ben-corrupt-jpeg", "eval.py", BEN, "data.root=dis_jpeg", "ckpt_path=ben.ckpt",
         message="error: dis_jpeg/DIS5K/DIS-TE1: 1 unreadable files (DIS-TE1_0000.jpg); fix them or set "
                 "data.on_mismatch=skip"),
    case("train-ben-corrupt-png", "train.py", BEN, "data.root=dis_png",
         message="error: dis_png/DIS5K/DIS-TR: 1 unreadable files (DIS-TR_0001.png)"),
    case("eval-dhd-corrupt-jpeg", "eval.py", DHD, "data.root=occ_jpeg", "ckpt_path=dhd.ckpt",
         message="error: sample {val}: CAM_FRONT image occ_jpeg/samples/CAM_FRONT/{val}_CAM_FRONT.jpg cannot be "
                 "decoded (corrupt or not an image)"),
    case("eval-dip-corrupt-png", "eval.py", DIP, "data.root=clean_png",
         message="error: cannot read image clean_png/b.png: not an image or corrupt; remove or replace the file"),
    case("predict-ben-bad-files", "predict.py", BEN_PREDICT, "ckpt_path=ben.ckpt", batch=True,
         message="1 processed, 0 already done (overwrite=true redoes them), 1 failed, 1 other files ignored"),
    case("predict-dip-bad-files", "predict.py", DIP_PREDICT, batch=True,
         message="1 processed, 0 already done (overwrite=true redoes them), 1 failed, 1 other files ignored"),
    case("predict-ben-bad-video", "predict.py", BEN_PREDICT, "input=clips", "ckpt_path=ben.ckpt", batch=True,
         message="1 processed, 0 already done (overwrite=true redoes them), 1 failed, 0 other files ignored"),
    case("predict-dhd-corrupt-jpeg", "predict.py", DHD_PREDICT, "input=occ_train_jpeg", "predictor.split=train",
         batch=True, message="1 processed, 0 already done (overwrite=true redoes them), 1 failed"),
    # truncated .npz
    case("eval-dhd-truncated-npz", "eval.py", DHD, "data.root=occ_npz", "ckpt_path=dhd.ckpt",
         message="error: sample {val}: occ_npz/gts/synthetic-val-0000/{val}/labels.npz is not a readable .npz"),
    # info pickle: missing fields or cameras, or a pickle that would run code
    case("eval-dhd-info-missing-camera", "eval.py", DHD, "data.root=occ_nocam", "ckpt_path=dhd.ckpt",
         message="error: sample {val}: camera CAM_BACK is missing (has CAM_BACK_LEFT, CAM_BACK_RIGHT, CAM_FRONT,"),
    case("eval-dhd-info-missing-field", "eval.py", DHD, "data.root=occ_nofield", "ckpt_path=dhd.ckpt",
         message="error: sample {val}: info record lacks ego2global_rotation; regenerate the info file"),
    case("train-dhd-info-runs-code", "train.py", DHD, "data.root=occ_evil",
         message="error: info file occ_evil/bevdetv2-nuscenes_infos_train.pkl holds a builtins.print object; "
                 "only plain types and numpy arrays are read"),
    # unknown model
    case("train-ben-unknown-model", "train.py", BEN, "model.name=ben_dla43",
         message="error: unknown model 'ben_dla43'; closest: "),
    case("eval-dhd-unknown-model", "eval.py", DHD, "model.name=dhd_dla43", "ckpt_path=dhd.ckpt",
         message="error: unknown model 'dhd_dla43'; closest: "),
    case("predict-ben-unknown-model", "predict.py", BEN_PREDICT, "model.name=ben_dla43",
         message="error: unknown model 'ben_dla43'; closest: "),
    case("eval-dip-unknown-model", "eval.py", DIP, "task.architecture=fixed", "model.name=dip_foo",
         message="error: unknown model 'dip_foo'; closest: "),
    case("predict-ben2-input-size", "predict.py", BEN2_PREDICT, "predictor.input_size=320",
         message="error: BEN2 needs height and width that are multiples of 128 (each of the 2 x 2 views' stride-32 "
                 "maps is halved), got 320x320; use 1024 (published), 512, 384 or 256"),
    case("train-ben2-refiner-stage", "train.py", BEN2, "task.stage=refiner",
         message="error: task.stage=refiner: this model has no Refiner; use task.stage=base, or model=ben2_refined"),
    case("train-ben-unknown-freeze", "train.py", BEN, "task.freeze=[bakbone]",
         message="error: task.freeze: the model has no part 'bakbone'; top-level parts: base, refiner"),
    case("train-unknown-model-config", "train.py", BEN, "model=ben_tin",
         message="error: no config model=ben_tin (did you mean model=ben_tiny?); pick one of configs/model/: "),
    # unknown or mistyped override
    case("train-unknown-key", "train.py", BEN, "trainer.max_epoch=1",
         message="error: unknown config key 'trainer.max_epoch' (did you mean trainer.max_epochs?); fix the name, "
                 "or write +trainer.max_epoch=1 to add a new key"),
    case("eval-unknown-experiment", "eval.py", ["experiment=ben_dis"],
         message="error: no config experiment=ben_dis (did you mean experiment=ben_dis5k?); pick one of "
                 "configs/experiment/: "),
    case("predict-dip-unknown-key", "predict.py", DIP_PREDICT, "task.fit.iteration=5",
         message="error: unknown config key 'task.fit.iteration' (did you mean task.fit.iterations?)"),
    case("train-unparsable-override", "train.py", BEN, "trainer.max_epochs=[1",
         message="error: cannot parse override 'trainer.max_epochs=[1' (no viable alternative at input '[1')"),
    case("train-argument-not-taken", "train.py", BEN, "+trainer.foo=1",
         message="error: trainer: Trainer takes no argument 'foo'; check the trainer.* overrides"),
    case("eval-dip-bad-noise", "eval.py", DIP, "data.noise=speckle",
         message="error: unknown noise kind 'speckle'; pick one of gaussian, poisson"),
    case("eval-dip-bad-loss", "eval.py", DIP, "task.fit.experimental.loss=l1",
         message="error: task.fit.experimental.loss must be one of mse, sure, not 'l1'"),
    case("eval-dip-bad-blend-share", "eval.py", DIP, "task.fit.blend=bm3d", "task.fit.blend_share=1.5",
         message="error: task.fit.blend_share is the DIP output's share in the blend, auto (0.25 below 128 px, 0.1 "
                 "from 128 px up) or between 0 and 1, not 1.5"),
    case("eval-dip-zero-iterations", "eval.py", DIP, "task.fit.iterations=0",
         message="error: task.fit.iterations must be auto (800 below 128 px, 1400 from 128 px up) or a number of "
                 "iterations of 1 or more, not 0"),
    case("eval-dip-merge-stop-options", "eval.py", DIP, "task.fit.early_stop={{rule:discrepancy,factor:0.9}}",
         message="error: task.fit.early_stop={{rule:discrepancy,factor:0.9}} adds options that task.fit.early_stop "
                 "lacks; to replace it whole write ~task.fit.early_stop '+task.fit.early_stop={{rule:discrepancy,"
                 "factor:0.9}}'"),
    case("eval-dip-auto-stop-options", "eval.py", DIP, "~task.fit.early_stop",
         "+task.fit.early_stop={{rule:auto,factor:0.9}}",
         message="error: task.fit.early_stop={{rule: auto}} takes no options (got factor); name the rule (discrepancy "
                 "or settle) to set them"),
    case("eval-dip-removed-guide", "eval.py", DIP, "task.fit.guide=bm3d",
         message="error: unknown config key 'task.fit.guide'"),
    case("train-no-experiment", "train.py", [], message="error: config has no 'data': pick a recipe with experiment=NAME"),
    # checkpoint for another model (or not a checkpoint)
    case("eval-ben-foreign-checkpoint", "eval.py", BEN, "ckpt_path=dhd.ckpt",
         message="error: weights dhd.ckpt are not for model 'ben_tiny' (none of its 514 tensors is in the file)"),
    case("eval-dhd-foreign-checkpoint", "eval.py", DHD, "ckpt_path=ben.ckpt",
         message="error: weights ben.ckpt are not for model 'dhd_tiny' (none of its 581 tensors is in the file)"),
    case("predict-ben-foreign-checkpoint", "predict.py", BEN_PREDICT, "ckpt_path=dhd.ckpt",
         message="error: weights dhd.ckpt are not for model 'ben_tiny'"),
    case("predict-dhd-foreign-checkpoint", "predict.py", DHD_PREDICT, "ckpt_path=ben.ckpt",
         message="error: weights ben.ckpt are not for model 'dhd_tiny'"),
    case("train-ben-resume-foreign", "train.py", BEN, "ckpt_path=dhd_run.ckpt",
         message="error: weights dhd_run.ckpt are not for model 'ben_tiny'"),
    case("train-ben-resume-weights-only", "train.py", BEN, "ckpt_path=ben.ckpt",
         message="error: ben.ckpt is not a training checkpoint (no optimizer or step state) and cannot be resumed; "
                 "to start a new run from its weights use model.pretrained=ben.ckpt"),
    case("train-ben-resume-missing", "train.py", BEN, "ckpt_path=last",
         message="error: ckpt_path=last: no checkpoints/last.ckpt in "),
    case("eval-ben-missing-checkpoint", "eval.py", BEN, "ckpt_path=/no/such.ckpt",
         message="error: weights not found: /no/such.ckpt; pass an existing file"),
    case("eval-ben-no-weights", "eval.py", BEN, message="error: eval needs weights: pass ckpt_path="),
    case("eval-dip-checkpoint", "eval.py", DIP, "ckpt_path=ben.ckpt",
         message="error: experiment dip_denoise loads no weights; drop ckpt_path"),
    case("predict-dip-checkpoint", "predict.py", DIP_PREDICT, "ckpt_path=ben.ckpt",
         message="error: experiment dip_denoise loads no weights; drop ckpt_path"),
    # checkpoint that is a code-executing pickle
    case("train-ben-resume-runs-code", "train.py", BEN, "ckpt_path=evil.ckpt",
         message="error: refused to load evil.ckpt: it holds pickled objects beyond tensors, which could run code"),
    case("eval-dhd-checkpoint-runs-code", "eval.py", DHD, "ckpt_path=evil.ckpt",
         message="error: refused to load evil.ckpt: it holds pickled objects beyond tensors, which could run code"),
    case("predict-ben-checkpoint-runs-code", "predict.py", BEN_PREDICT, "ckpt_path=evil.ckpt",
         message="error: refused to load evil.ckpt: it holds pickled objects beyond tensors, which could run code"),
    case("eval-ben-pretrained-runs-code", "eval.py", BEN, "model.pretrained=evil.ckpt",
         message="error: refused to load evil.ckpt: it holds pickled objects beyond tensors, which could run code"),
    # distillation: the teacher's weights, its input size, the photo folder
    case("train-distill-no-teacher-weights", "train.py", DISTILL, "teacher.weights=null",
         message="error: teacher.weights is not set; pass teacher.weights=PATH (BEN2_Base.pth, model.safetensors, "
                 "a zoo BEN checkpoint)"),
    case("train-distill-missing-teacher-weights", "train.py", DISTILL, "teacher.weights=/no/BEN2_Base.pth",
         message="error: weights not found: /no/BEN2_Base.pth; pass an existing file"),
    case("train-distill-teacher-not-a-ben", "train.py", DISTILL, "teacher.name=dhd_tiny",
         message="error: teacher.name=dhd_tiny is not a matting model (it is for occupancy); the teacher must be one "
                 "of ben2_base, ben2_refined"),
    case("train-distill-teacher-size-differs", "train.py", DISTILL, "teacher.input_size=128",
         message="error: teacher.input_size=[128, 128] but data.input_size=[64, 64]: the student learns the "
                 "teacher's masks at its own input size; set both to the same size"),
    case("train-distill-empty-photo-folder", "train.py", DISTILL, "data.root=empty",
         message="error: data.root empty holds no images (.jpg"),
    case("train-distill-one-photo", "train.py", DISTILL, "data.root=photos",
         message="error: data.root photos holds 1 readable images; distillation needs at least 2"),
    # output folder not writable
    case("predict-ben-output-not-writable", "predict.py", BEN_PREDICT, "output=a_file",
         message="error: output folder a_file is not writable (File exists); choose another output="),
    case("predict-dhd-output-not-writable", "predict.py", DHD_PREDICT, "output=a_file/labels",
         message="error: output folder a_file/labels is not writable (Not a directory); choose another output="),
    case("predict-dip-output-not-writable", "predict.py", DIP_PREDICT, "output=a_file",
         message="error: output folder a_file is not writable (File exists); choose another output="),
    case("eval-ben-predictions-not-writable", "eval.py", BEN, "ckpt_path=ben.ckpt", "task.save_predictions=a_file/m",
         message="error: output folder a_file/m is not writable (Not a directory); choose another "
                 "task.save_predictions="),
    case("train-run-folder-not-writable", "train.py", BEN, "hydra.run.dir=a_file/run",
         message="error: cannot create the run folder a_file/run: a_file is not a folder; set hydra.run.dir="),
]

PREVIOUS = b"an earlier run's output"


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _rewrite_infos(root: Path, split: str, change) -> None:
    path = root / f"bevdetv2-nuscenes_infos_{split}.pkl"
    with open(path, "rb") as handle:
        info = pickle.load(handle)
    with open(path, "wb") as handle:
        pickle.dump(change(info), handle)


class _RunsCode:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_dis, tiny_occ3d) -> Path:
    """One folder holding a broken copy of the data per case, the checkpoints and the photo folders."""
    import torch

    import visionzoo
    from tests.helpers.video import write_clip

    w = tmp_path_factory.mktemp("bad_inputs")
    _copy(tiny_dis, w / "dis")
    for name in ("dis_empty", "dis_size", "dis_jpeg", "dis_png"):
        _copy(tiny_dis, w / name)
    for path in [*(w / "dis_empty/DIS5K/DIS-TR/im").iterdir(), *(w / "dis_empty/DIS5K/DIS-TR/gt").iterdir()]:
        path.unlink()
    mask_path = w / "dis_size/DIS5K/DIS-TR/gt/DIS-TR_0000.png"
    cv2.imwrite(str(mask_path), cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)[:-5])
    (w / "dis_jpeg/DIS5K/DIS-TE1/im/DIS-TE1_0000.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (w / "dis_png/DIS5K/DIS-TR/gt/DIS-TR_0001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    for split in ("DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4"):
        _copy(tiny_dis / "DIS5K" / split / "gt", w / "preds_missing" / split)
    (w / "preds_missing/DIS-VD/DIS-VD_0000.png").rename(w / "preds_missing/DIS-VD/stray.png")

    _copy(tiny_occ3d, w / "occ")
    val = _val_token(tiny_occ3d)
    wrong = w / "occ_preds_shape" / "synthetic-val-0000" / val
    wrong.mkdir(parents=True)
    np.savez_compressed(wrong / "labels.npz", semantics=np.zeros((50, 50, 8), np.uint8))
    for name in ("occ_empty", "occ_shape", "occ_jpeg", "occ_train_jpeg", "occ_npz", "occ_nocam", "occ_nofield",
                 "occ_evil"):
        _copy(tiny_occ3d, w / name)
    _rewrite_infos(w / "occ_empty", "val", lambda info: {**info, "infos": []})
    labels = next((w / "occ_shape/gts").rglob(f"{val}/labels.npz"))
    with np.load(labels) as data:
        arrays = {key: data[key][:, :-1] for key in data.files}
    np.savez_compressed(labels, **arrays)
    (w / f"occ_jpeg/samples/CAM_FRONT/{val}_CAM_FRONT.jpg").write_bytes(b"not a jpeg")
    train_image = sorted((w / "occ_train_jpeg/samples/CAM_FRONT").glob("*.jpg"))
    train_image = next(p for p in train_image if not p.name.startswith(val))
    train_image.write_bytes(b"not a jpeg")
    npz = next((w / "occ_npz/gts").rglob(f"{val}/labels.npz"))
    npz.write_bytes(npz.read_bytes()[:100])
    _rewrite_infos(w / "occ_nocam", "val", lambda info: {
        **info, "infos": [{**r, "cams": {k: v for k, v in r["cams"].items() if k != "CAM_BACK"}} for r in info["infos"]]})
    _rewrite_infos(w / "occ_nofield", "val", lambda info: {
        **info, "infos": [{k: v for k, v in r.items() if k != "ego2global_rotation"} for r in info["infos"]]})
    _rewrite_infos(w / "occ_evil", "train", lambda info: {**info, "metadata": _RunsCode()})

    photos = w / "photos"
    photos.mkdir()
    shutil.copy(tiny_dis / "DIS5K/DIS-TE1/im/DIS-TE1_0000.jpg", photos / "good.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (photos / "notes.txt").write_text("not an image")
    clips = w / "clips"
    clips.mkdir()
    write_clip(clips / "good.mp4", frames=3)
    (clips / "broken.mp4").write_bytes(b"not a video")
    clean = w / "clean"
    clean.mkdir()
    shutil.copy(tiny_dis / "DIS5K/DIS-TE1/im/DIS-TE1_0000.jpg", clean / "a.jpg")
    _copy(clean, w / "clean_png")
    (w / "clean_png/b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (w / "empty").mkdir()
    (w / "a_file").write_text("a file where a folder is expected")

    def weights(name: str) -> dict:
        return {f"net.{k}": v for k, v in visionzoo.create_model(name).state_dict().items()}

    torch.save({"state_dict": weights("ben_tiny")}, w / "ben.ckpt")
    torch.save({"state_dict": weights("dhd_tiny")}, w / "dhd.ckpt")
    torch.save({"state_dict": weights("dhd_tiny"), "epoch": 0, "global_step": 1, "optimizer_states": []},
               w / "dhd_run.ckpt")
    torch.save({"state_dict": _RunsCode()}, w / "evil.ckpt")
    return w


def _val_token(occ_root: Path) -> str:
    return next((occ_root / "gts/synthetic-val-0000").iterdir()).name


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Run:
    """One case's command: its working folder, what it printed and exited with, and the output folder before."""

    work: Path
    result: subprocess.CompletedProcess
    before: dict[str, bytes]


def _prepare(bad: Case, inputs: Path, work: Path) -> tuple[dict, dict[str, bytes]]:
    """The case's working folder (the inputs linked in, an output folder holding an earlier run's file) and its
    job for :mod:`tests.helpers.command_batch`; with what the output folder held before."""
    work.mkdir()
    for entry in inputs.iterdir():
        (work / entry.name).symlink_to(entry)
    out = work / "out"
    out.mkdir()
    (out / "previous.png").write_bytes(PREVIOUS)
    args = [a.format(dis="dis", occ="occ", photos="photos", clean="clean") for a in bad.args]
    # a cache of its own: the tests' autouse fixture sets one per test, but these run beside other tests
    job = {"id": bad.id, "script": str(ROOT / bad.script), "args": ["hydra.run.dir=run", *args], "cwd": str(work),
           "env": {"VISIONZOO_CACHE": str(work.parent / "cache")}}
    return job, _files(out)


def _run_batch(jobs: list[dict], folder: Path) -> dict[str, subprocess.CompletedProcess]:
    """The jobs' commands one after another in one subprocess (imports once); a result per job id."""
    (folder / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "command_batch.py"),
                           str(folder / "jobs.json"), str(folder / "results.json")],
                          capture_output=True, text=True, timeout=1800, env=env)
    results = json.loads((folder / "results.json").read_text()) if (folder / "results.json").is_file() else {}
    missing = [job["id"] for job in jobs if job["id"] not in results]
    if missing:
        raise RuntimeError(f"the batch stopped before {missing[0]}: {done.stderr[-3000:]}")
    return {job["id"]: subprocess.CompletedProcess(job["args"], **results[job["id"]]) for job in jobs}


#: Batches run at once, one core each; each runs its cases one after another in one Python process.
PARALLEL = 2


@pytest.fixture(scope="module")
def runs(request, inputs: Path, tmp_path_factory) -> dict[str, Future]:
    """The selected cases, dealt round-robin into ``PARALLEL`` batches that start when the first case asks; each
    test waits for its own (``-k`` selects which run)."""
    selected = [item.callspec.params["bad"] for item in request.session.items
                if item.module is request.module and "bad" in getattr(getattr(item, "callspec", None), "params", {})]
    prepared = {bad.id: _prepare(bad, inputs, tmp_path_factory.mktemp(bad.id) / "w") for bad in selected}
    batches = [[prepared[bad.id][0] for bad in selected[k::PARALLEL]] for k in range(PARALLEL)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = [pool.submit(_run_batch, jobs, tmp_path_factory.mktemp("batch")) for jobs in batches if jobs]
        futures: dict[str, Future] = {}
        for batch, result in zip((b for b in batches if b), results):
            for job in batch:
                futures[job["id"]] = pool.submit(_case_run, result, job, prepared[job["id"]][1])
        yield futures
        pool.shutdown(cancel_futures=True)


def _case_run(batch: Future, job: dict, before: dict[str, bytes]) -> Run:
    return Run(Path(job["cwd"]), batch.result()[job["id"]], before)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input(bad: Case, inputs: Path, runs: dict[str, Future]):
    run = runs[bad.id].result()
    work, result, before = run.work, run.result, run.before
    out = work / "out"
    stderr = result.stderr
    if os.environ.get("VISIONZOO_RECORD_ERRORS"):  # docs/errors.md is written from these (see write_docs_table)
        with open(os.environ["VISIONZOO_RECORD_ERRORS"], "a") as record:
            shown = stderr.strip().splitlines()[-3:] if bad.batch else stderr.strip().splitlines()[-1:]
            record.write(json.dumps({"id": bad.id, "rc": result.returncode, "lines": shown}) + "\n")
    assert "code ran" not in result.stdout + stderr  # a pickled call is never made
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not list(work.rglob("*.part")) and not list(out.rglob(".*.part")), "a temporary file was left"
    if bad.batch:
        assert result.returncode == 0, stderr[-3000:]
        assert re.sub(r"\s+", " ", bad.message) in re.sub(r"\s+", " ", stderr), stderr[-3000:]
        assert "failed: " in stderr and (out / "previous.png").read_bytes() == PREVIOUS
        assert len(_files(out)) > len(before), "the good files were not processed"
        return
    assert result.returncode == 2, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    expected = bad.message.format(w=work, val=_val_token(inputs / "occ"))
    assert last.startswith(expected), f"\n{last}\n{expected}"
    assert _files(out) == before, "output changed by a run that failed"


def test_docs_list_every_case():
    """docs/errors.md has a row per case (its id) with the message the case prints (the case's expected start of
    its error line, placeholders for the sample token and the work folder matching anything, ``{{ }}`` single)."""
    rows = {line.split("`")[1]: line for line in DOCS.read_text().splitlines() if line.startswith("| `")}
    for bad in CASES:
        assert bad.id in rows, f"{bad.id} missing from {DOCS}"
        printed = re.sub(r"\s+", " ", rows[bad.id].split(" | ")[-1].replace("\\|", "|"))
        fragments = re.split(r"\{w\}|\{val\}", re.sub(r"\s+", " ", bad.message))
        fragments = [fragment.replace("{{", "{").replace("}}", "}") for fragment in fragments]  # format's escapes
        pattern = ".*?".join(re.escape(fragment) for fragment in fragments)
        assert re.search(pattern, printed), f"{bad.id}: docs say {printed!r}, the case expects {bad.message!r}"


def write_docs_table(record: Path) -> str:
    """The Markdown table of docs/errors.md from a run of this suite with VISIONZOO_RECORD_ERRORS=record."""
    printed = {row["id"]: row for row in map(json.loads, record.read_text().splitlines())}
    hidden = ("data.input_size", "data.num_workers", "data.batch_size", "data.eval_batch_size", "callbacks.", "data.grid",
              "trainer.max_epochs=1", "data.synthetic", "predictor.input_size", "task.fit.iterations=10", "data.size")
    lines = ["| case | command (test sizes left out) | exit | what it prints (last line) |", "|---|---|---|---|"]
    for bad in CASES:
        args = {}
        for arg in bad.args:
            if not arg.startswith(hidden):
                args[arg.split("=", 1)[0]] = arg
        command = " ".join([bad.script, *args.values()]).format(dis="DIS5K", occ="nuscenes", photos="photos",
                                                                clean="clean")
        row = printed[bad.id]
        shown = "".join((" / " if line.strip().startswith("failed:") else " ") + line.strip() for line in row["lines"])
        shown = shown.strip().replace("|", "\\|")  # (the batch report is wrapped at the terminal's width)
        shown = re.sub(r"/tmp/\S+?/w/", "", shown)
        lines.append(f"| `{bad.id}` | `{command}` | {row['rc']} | {shown} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python tests/test_bad_inputs.py RECORD.jsonl: print the docs table
    print(write_docs_table(Path(sys.argv[1])), end="")
