"""Distillation: the teacher (frozen, outside the checkpoints), its mask cache, the student's losses and metrics,
and the recipe end to end through train.py's and eval.py's runner."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

import visionzoo
from tests.helpers.configs import compose_config
from visionzoo.data.transforms import image_to_tensor, resize_image
from visionzoo.errors import DataError, VisionZooError
from visionzoo.metrics.dis import AgreementMetrics
from visionzoo.models.ben import TRIMAP_UNKNOWN
from visionzoo.run import jobs
from visionzoo.tasks.distill import BENDistillTask
from visionzoo.tasks.teacher import Teacher, check_target_folder, load_teacher, uncertain_band, write_teacher_masks


@pytest.fixture(scope="module")
def teacher_weights(tmp_path_factory) -> Path:
    """A randomly initialised ben_tiny saved with save_pretrained (seeded)."""
    torch.manual_seed(3)
    net = visionzoo.create_model("ben_tiny")
    return visionzoo.save_pretrained(net, tmp_path_factory.mktemp("teacher") / "ben_tiny")


def _teacher(weights: Path, size: int = 32) -> Teacher:
    return load_teacher("ben_tiny", str(weights), size)


def test_load_teacher_needs_weights_and_a_matting_model(teacher_weights):
    with pytest.raises(VisionZooError, match="teacher.weights is not set; pass teacher.weights=PATH"):
        load_teacher("ben2_base", None, 1024)
    with pytest.raises(VisionZooError, match="teacher.name=dhd_tiny is not a matting model .it is for occupancy."):
        load_teacher("dhd_tiny", str(teacher_weights), 64)
    with pytest.raises(VisionZooError, match="teacher.name=ben3 is not a registered model; the teacher must be one "
                                             "of ben2_base, ben2_refined, ben_base, ben_dla102, ben_dla34, ben_dla60x, "
                                             "ben_tiny, mvanet"):
        load_teacher("ben3", str(teacher_weights), 64)
    with pytest.raises(VisionZooError, match="teacher.precision must be one of auto, fp32, bf16"):
        load_teacher("ben_tiny", str(teacher_weights), 64, precision="fp16")


def test_teacher_is_frozen_and_checks_its_input_size(teacher_weights):
    teacher = _teacher(teacher_weights)
    assert not teacher.net.training and not any(p.requires_grad for p in teacher.net.parameters())
    images = torch.randn(2, 3, 32, 32, requires_grad=True)
    alpha = teacher.alpha(images)
    assert alpha.shape == (2, 1, 32, 32) and alpha.dtype == torch.float32 and not alpha.requires_grad
    assert 0 <= float(alpha.min()) and float(alpha.max()) <= 1
    torch.testing.assert_close(alpha, teacher.net(images)["alpha"].detach())
    with pytest.raises(VisionZooError, match="the teacher takes 32x32 inputs but got 48x32"):
        teacher.alpha(torch.randn(1, 3, 48, 32))
    assert teacher.fingerprint()["input_size"] == [32, 32] and teacher.fingerprint()["name"] == "ben_tiny"


def test_teacher_masks_are_written_once_at_each_photo_size(teacher_weights, tmp_path):
    teacher = _teacher(teacher_weights)
    rng = np.random.default_rng(0)
    photos = []
    for name, (height, width) in {"a": (40, 56), "b": (72, 30)}.items():
        photos.append(tmp_path / f"{name}.png")
        cv2.imwrite(str(photos[-1]), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    jobs = [(p, tmp_path / "targets" / f"{p.stem}.png") for p in [*photos, broken]]
    failed = write_teacher_masks(teacher, jobs, batch_size=2, progress=False)
    assert list(failed) == [broken] and "cannot read image" in failed[broken]
    assert not jobs[2][1].exists() and not list((tmp_path / "targets").glob("*.part"))
    for photo, target in jobs[:2]:
        rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
        alpha = teacher.alpha(image_to_tensor(resize_image(rgb, (32, 32), "area"))[None])
        full = F.interpolate(alpha, size=rgb.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        expected = (full * 255 + 0.5).to(torch.uint8).numpy()
        written = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
        assert written.dtype == np.uint8 and written.shape == rgb.shape[:2]
        assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1  # batch-of-2 vs batch-of-1 rounding
    # resumable: existing masks are kept as they are
    cv2.imwrite(str(jobs[0][1]), np.zeros((40, 56), np.uint8))
    assert write_teacher_masks(teacher, jobs[:2], progress=False) == {}
    assert cv2.imread(str(jobs[0][1]), cv2.IMREAD_UNCHANGED).max() == 0


def test_target_folder_belongs_to_one_teacher(teacher_weights, tmp_path):
    check_target_folder(tmp_path / "t", _teacher(teacher_weights, 32))
    check_target_folder(tmp_path / "t", _teacher(teacher_weights, 32))  # the same teacher again: fine
    assert json.loads((tmp_path / "t/teacher.json").read_text())["input_size"] == [32, 32]
    with pytest.raises(DataError, match=f"{tmp_path / 't'} holds masks of another teacher .ben_tiny from .* at "
                                        r"\[32, 32\]\); delete the folder or set data.targets_dir"):
        check_target_folder(tmp_path / "t", _teacher(teacher_weights, 64))


def test_uncertain_band_by_hand():
    target = torch.tensor([[0.0, 0.0, 0.5, 1.0, 1.0, 0.96, 0.03]]).reshape(1, 1, 1, 7)
    # |2t - 1| < 0.9 only at 0.5 (0.96 -> 0.92 and 0.03 -> 0.94 are confident)
    assert uncertain_band(target, 0.9, dilation=1).flatten().tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert uncertain_band(target, 0.9, dilation=3).flatten().tolist() == [0, 1, 1, 1, 0, 0, 0]
    assert uncertain_band(target, 0.93, dilation=1).flatten().tolist() == [0, 0, 1, 0, 0, 1, 0]


def test_agreement_metrics_add_the_soft_mae():
    metric = AgreementMetrics()
    teacher = np.array([[0, 51, 102, 255], [255, 255, 0, 0]], np.uint8)
    student = np.array([[0, 0, 102, 204], [255, 255, 0, 51]], np.uint8)
    metric.update([np.tile(student, (8, 4))], [np.tile(teacher, (8, 4))])  # 16 x 16: room for the S/E measures
    values = metric.compute()
    assert values["softMAE"] == pytest.approx((51 + 51 + 51) / 8 / 255)
    # the DIS metrics read the teacher binarised at > 128: the student's 204 and 51 agree with it there
    assert {"maxFb", "wFb", "MAE", "Sa", "meanEm", "maxEm", "HCE"} < set(values)


def _task(weights: Path, stage: str = "joint") -> BENDistillTask:
    return BENDistillTask(visionzoo.create_model("ben_tiny"), _teacher(weights),
                          optimizer=functools.partial(torch.optim.AdamW, lr=1e-3), stage=stage)


def test_the_teacher_is_neither_trained_nor_saved(teacher_weights):
    task = _task(teacher_weights)
    assert not any(k.startswith("teacher") for k in task.state_dict())
    assert {id(p) for p in task.trainable_parameters()} == {id(p) for p in task.net.parameters()}
    assert not any(id(p) in {id(q) for q in task.parameters()} for p in task.teacher.net.parameters())


def test_refiner_loss_weighs_the_teacher_unsure_band(teacher_weights):
    """The Refiner's band is the student's unknown pixels plus the teacher's unsure ones grown by ``band_dilation``:
    with a student sure of everything but one pixel, the grown block is all that shows, so every dilation tells."""
    task = _task(teacher_weights).train()
    student = {"trimap": torch.zeros(2, 1, 32, 32)}  # background everywhere ...
    student["trimap"][1, 0, 30, 2] = TRIMAP_UNKNOWN  # ... but one unknown pixel
    confident = (torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    unsure = confident.clone()
    unsure[..., 10:14, 10:14] = 0.5  # a 4 x 4 block the teacher is unsure about
    assert torch.equal(task.refiner_band(student, confident), (student["trimap"] == TRIMAP_UNKNOWN).float())
    for dilation, grown in ((7, slice(7, 17)), (3, slice(9, 15)), (1, slice(10, 14))):
        task.band_dilation = dilation
        expected = torch.zeros(2, 1, 32, 32)
        expected[..., grown, grown] = 1  # the block grown by (dilation - 1) / 2 pixels on every side
        expected[1, 0, 30, 2] = 1
        assert torch.equal(task.refiner_band(student, unsure), expected), dilation
    # a real student's band is the same union
    out = task._forward(torch.randn(2, 3, 32, 32))
    task.band_dilation = 7
    torch.testing.assert_close(task.refiner_band(out, unsure), torch.maximum(
        super(BENDistillTask, task).refiner_band(out, unsure), uncertain_band(unsure, 0.9, 7)))


def _distill_overrides(photos: Path, weights: Path, *extra: str) -> list[str]:
    return ["experiment=ben_distill", "model=ben_tiny", "teacher=ben", "teacher.name=ben_tiny",
            f"teacher.weights={weights}", f"data.root={photos}", "data.input_size=32", "data.num_workers=0",
            "data.batch_size=2", "data.eval_batch_size=2", "data.val_fraction=0.3", "trainer.max_epochs=1",
            "callbacks.rich_progress_bar=null", "logger=csv", "task.speed_repeats=1", *extra]


@pytest.fixture(scope="module")
def photos(tiny_dis) -> Path:
    """The tiny synthetic DIS5K (its DIS-VD/im folder serves as a folder of photos)."""
    return tiny_dis / "DIS5K"


@pytest.mark.parametrize("targets", ["cached", "online"])
def test_distillation_runs_end_to_end(targets, teacher_weights, tiny_dis, tmp_path):
    photos = tmp_path / "photos"
    for image in sorted((tiny_dis / "DIS5K").glob("*/im/*.jpg")):
        (photos / image.parent.parent.name).mkdir(parents=True, exist_ok=True)
        (photos / image.parent.parent.name / image.name).symlink_to(image)
    cfg = compose_config("train", _distill_overrides(photos, teacher_weights, f"data.targets={targets}",
                                                     f"data.dis5k_root={tiny_dis}"), tmp_path / "run")
    metrics = jobs.train(cfg)
    assert metrics["train/loss"] > 0 and "val/softMAE" in metrics and "val/DIS-VD/maxFb" in metrics
    targets_dir = Path(cfg.data.targets_dir)
    cached = sorted(p.relative_to(targets_dir) for p in targets_dir.rglob("*.png"))
    datamodule = instantiate(cfg.data)
    held = datamodule.photos("held-out photos")
    expected = held if targets == "online" else datamodule.photos("train") + held
    assert cached == sorted(p.relative_to(photos).with_suffix(".png") for p in expected)
    checkpoint = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    assert all(k.startswith("net.") for k in checkpoint["state_dict"])  # the student alone
    rows = json.loads((tmp_path / "run/metrics.json").read_text())
    assert [r["split"] for r in rows if r["model"] == "refined"][:2] == ["held-out photos", "DIS-VD"]
    report = (tmp_path / "run/distill_report.md").read_text()
    assert "| cpu | fp32 |" in report and "| held-out photos | refined |" in report
    picture = cv2.imread(str(tmp_path / "run/pictures/held-out photos.png"))
    assert picture is not None and picture.shape[0] > 0


def test_a_student_equal_to_its_teacher_agrees_with_it(teacher_weights, photos, tmp_path):
    """eval.py on the held-out photos with the teacher's own weights as the student: softMAE is the 8-bit rounding
    of two identical computations (0 up to float noise between batch sizes)."""
    cfg = compose_config("eval", [*_distill_overrides(photos / "DIS-VD/im", teacher_weights, "data.val_fraction=0.5"),
                                  f"ckpt_path={teacher_weights}"], tmp_path)
    rows = {r["model"]: r for r in jobs.evaluate(cfg)}
    assert rows["refined"]["split"] == "held-out photos"
    assert rows["refined"]["softMAE"] < 1e-4


@pytest.mark.parametrize("student", ["ben_tiny", "ben_dla34", "ben_dla60x", "ben_dla102"])
def test_every_ben_learns_from_a_teacher(student, teacher_weights):
    """Each registered DLA BEN gets gradients everywhere from a teacher's masks, and three optimiser steps lower
    its loss on that batch."""
    torch.manual_seed(0)
    task = BENDistillTask(visionzoo.create_model(student), _teacher(teacher_weights, 64),
                          optimizer=functools.partial(torch.optim.AdamW, lr=1e-4)).train()
    images = torch.randn(2, 3, 64, 64)
    target = task.teacher.alpha(images)
    optimizer = task.configure_optimizers()
    before = task.compute_losses(task._forward(images), target)["loss"]
    before.backward()
    assert all(p.grad is not None for p in task.net.parameters())
    optimizer.step()
    for _ in range(2):  # two more steps: Adam's first step may overshoot on the larger models
        optimizer.zero_grad()
        task.compute_losses(task._forward(images), target)["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        after = task.compute_losses(task._forward(images), target)["loss"]
    assert float(after) < float(before)


@pytest.mark.parametrize("name", ["ben2_base", "ben2_refined"])
def test_the_published_ben2_can_teach(name):
    """BEN2 (random weights here; the published file in use) gives soft masks of the student's input size."""
    teacher = Teacher(visionzoo.create_model(name), name, "random", (256, 256))
    alpha = teacher.alpha(torch.randn(1, 3, 256, 256))
    assert alpha.shape == (1, 1, 256, 256) and 0 <= float(alpha.min()) <= float(alpha.max()) <= 1
