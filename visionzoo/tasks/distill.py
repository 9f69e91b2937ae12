"""Distillation of a BEN teacher (the published BEN2, a zoo BEN checkpoint) into a student BEN on unlabeled photos.

The student is trained exactly like a BEN on DIS5K (:class:`~visionzoo.tasks.ben.BENTask`: BCE + IoU + SSIM with
deep supervision, the Refiner stages) with the teacher's soft masks as targets; its Refiner loss weighs fully the
pixels where the teacher is unsure (``|2t - 1| < band_confidence``, grown by ``band_dilation`` pixels) besides the
student's own unknown band. Targets come from the mask cache of :class:`~visionzoo.data.photos.PhotoDataModule`,
written here before the first batch (every process writes its share), or, with ``data.targets=online``, from the
teacher on each augmented training batch.

Validation and testing score agreement with the teacher on the held-out photos (the DIS metrics against the
teacher's masks binarised at 0.5, and ``softMAE`` to its soft masks) and, with ``data.dis5k_root``, the real DIS
metrics. After testing, ``distill_report.md`` in the run folder puts the student's speed beside the teacher's
(measured in the same run, on the CPU and on the run's GPU when it has one) and the agreement table; ``pictures/held-out photos.png`` shows
image, teacher, student and their difference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from visionzoo.data.photos import HELD_OUT
from visionzoo.errors import VisionZooError
from visionzoo.files import atomic_write
from visionzoo.metrics.dis import AgreementMetrics, DISMetrics
from visionzoo.tasks.ben import BENTask
from visionzoo.tasks.teacher import Teacher, check_target_folder, uncertain_band, write_teacher_masks
from visionzoo.visualize import gray_to_rgb, over_checkerboard

HELD_OUT_TITLES = ("image", "teacher", "student", "|student - teacher|", "student cut-out")


def seconds_per_image(net: nn.Module, size: tuple[int, int], device: torch.device, repeats: int = 2,
                      dtype: torch.dtype | None = None) -> float:
    """Median wall seconds of one forward pass on one ``size`` = (H, W) image (after one warm-up pass)."""
    image = torch.randn(1, 3, *size, device=device)
    timings = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for index in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            net(image)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index:
                timings.append(time.perf_counter() - start)
    return float(np.median(timings))


class BENDistillTask(BENTask):
    """:class:`~visionzoo.tasks.ben.BENTask` whose targets are a teacher's soft masks.

    Args:
        net: the student BEN. teacher: the frozen :class:`~visionzoo.tasks.teacher.Teacher`.
        band_confidence, band_dilation: the teacher's unsure band that the Refiner loss weighs fully.
        teacher_batch_size: photos per teacher pass when caching masks.
        speed_repeats: timed forward passes per network for the report (0: no timing).
        **kwargs: everything :class:`~visionzoo.tasks.ben.BENTask` takes.
    """

    def __init__(self, net: nn.Module, teacher: Teacher | None, band_confidence: float = 0.9, band_dilation: int = 7,
                 teacher_batch_size: int = 4, speed_repeats: int = 2, **kwargs: Any) -> None:
        if teacher is None:
            raise VisionZooError("task=ben_distill needs a teacher: pass teacher=ben2_base (or ben2_refined, ben) and "
                                 "teacher.weights=PATH")
        super().__init__(net, **kwargs)
        # Outside the module tree on purpose: never trained, saved, moved by Lightning or wrapped by DDP.
        self.__dict__["teacher"] = teacher
        self.band_confidence, self.band_dilation = band_confidence, band_dilation
        self.teacher_batch_size, self.speed_repeats = teacher_batch_size, speed_repeats
        self._online = False

    # ---- targets ----------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Write the teacher's masks this run needs (each process its share), before any dataloader is built."""
        datamodule = self.trainer.datamodule
        if tuple(self.teacher.input_size) != tuple(datamodule.size):
            raise VisionZooError(
                f"teacher.input_size={list(self.teacher.input_size)} but data.input_size={list(datamodule.size)}: the "
                "student learns the teacher's masks at its own input size; set both to the same size")
        self._online = datamodule.targets == "online"
        photos = datamodule.photos_needing_targets() if stage == "fit" else datamodule.photos(HELD_OUT)
        self.teacher.to(self.trainer.strategy.root_device)
        if self.trainer.is_global_zero:
            check_target_folder(datamodule.targets_dir, self.teacher)
        self.trainer.strategy.barrier("teacher targets folder")
        share = photos[self.trainer.global_rank :: self.trainer.world_size]
        write_teacher_masks(self.teacher, [(p, datamodule.target_path(p)) for p in share], self.teacher_batch_size,
                            progress=self.trainer.is_global_zero)
        self.trainer.strategy.barrier("teacher targets written")

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self._online:
            batch = {**batch, "mask": self.teacher.alpha(batch["image"]).to(batch["image"].device)}
        return super().training_losses(batch)

    def refiner_band(self, out: Mapping[str, Any], mask: torch.Tensor) -> torch.Tensor:
        teacher_band = uncertain_band(mask, self.band_confidence, self.band_dilation)
        return torch.maximum(super().refiner_band(out, mask), teacher_band)

    # ---- evaluation -------------------------------------------------------------------------------------------
    def new_metrics(self, split: str) -> DISMetrics:
        return AgreementMetrics(self.skeleton_dir) if split == HELD_OUT else DISMetrics(self.skeleton_dir)

    def picture_titles(self, split: str) -> tuple[str, ...]:
        return HELD_OUT_TITLES if split == HELD_OUT else super().picture_titles(split)

    def picture_row(self, split: str, image: np.ndarray, gt: np.ndarray, preds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if split != HELD_OUT:
            return super().picture_row(split, image, gt, preds)
        student = preds[self.variants[-1]]
        difference = np.abs(student.astype(np.int16) - gt.astype(np.int16)).astype(np.uint8)
        return [image, gray_to_rgb(gt), gray_to_rgb(student), gray_to_rgb(difference), over_checkerboard(image, student)]

    def on_test_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        report = distill_report(self.teacher, self.net, self._results, self.speed_repeats, self.device)
        atomic_write(Path(self.trainer.default_root_dir) / "distill_report.md", lambda tmp: Path(tmp).write_text(report))


def speed_rows(teacher: Teacher, student: nn.Module, repeats: int, devices: Sequence[torch.device]) -> list[str]:
    """Markdown rows: the teacher's and the student's seconds per image on each device (bf16 autocast on CUDA,
    fp32 on the CPU), both in eval mode and moved back where they were afterwards."""
    rows = []
    home = {id(net): next(net.parameters()).device for net in (teacher.net, student)}
    was_training = student.training
    student.eval()
    try:
        for device in devices:
            dtype = torch.bfloat16 if device.type == "cuda" else None
            teacher.net.to(device), student.to(device)
            timed = [seconds_per_image(net, teacher.input_size, device, repeats, dtype) for net in (teacher.net, student)]
            rows.append(f"| {device.type} | {'bf16 autocast' if dtype else 'fp32'} | {timed[0]:.3f} | {timed[1]:.3f} "
                        f"| **{timed[0] / timed[1]:.1f}x** |")
    finally:
        for net in (teacher.net, student):
            net.to(home[id(net)])
        student.train(was_training)
    return rows


def distill_report(teacher: Teacher, student: nn.Module, rows: list[dict[str, Any]], repeats: int,
                   device: torch.device) -> str:
    """Markdown: the two networks' seconds per image (same run; on the CPU, and on the run's GPU when it has one)
    and the test rows."""
    lines = [f"# Distillation: {teacher.name} -> {student.visionzoo_config['name']}", "",
             f"Teacher weights: {teacher.weights}; input {teacher.input_size[0]}x{teacher.input_size[1]}.", ""]
    if repeats:
        devices = [device] + ([torch.device("cpu")] if device.type != "cpu" else [])
        lines += [f"## Speed (batch 1, median of {repeats} after a warm-up)", "",
                  "| device | precision | teacher s / image | student s / image | student speed-up |",
                  "|---|---|---:|---:|---:|", *speed_rows(teacher, student, repeats, devices), ""]
    if rows:
        columns = [c for c in rows[0] if c not in ("split", "model")]
        lines += ["## Agreement and quality", "",
                  f"`{HELD_OUT}`: against the teacher's masks (DIS metrics on them binarised at 0.5; softMAE to the "
                  "soft masks); DIS5K splits: against their real masks.", "",
                  "| split | student output | " + " | ".join(columns) + " |",
                  "|---|---|" + "---:|" * len(columns)]
        for row in rows:
            values = " | ".join(f"{row[c]:.4f}" if isinstance(row.get(c), float) else "" for c in columns)
            lines.append(f"| {row['split']} | {row['model']} | {values} |")
        lines += ["", f"Pictures: `pictures/{HELD_OUT}.png` (image, teacher, student, difference, cut-out)."]
    return "\n".join(lines) + "\n"
