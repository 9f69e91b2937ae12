"""Cut objects out of users' images and videos with BEN: an 8-bit mask and an RGBA cut-out per image.

For each input ``photo.jpg`` it writes ``<output>/photo_mask.png`` (8-bit alpha at the original resolution) and
``<output>/photo_cutout.png`` (the upright image with that alpha; 16-bit inputs give a 16-bit cut-out, an input
alpha channel is multiplied in). Images are resized to the model's input size with the filter its weights expect
(the model card's ``preprocessing.resample``: Lanczos for ``ben2_base``, as its published ``inference()``), the
alpha is resized back bilinearly and, as BEN's own post-processing does, min-max normalised per image
(``normalize``). With ``refine_foreground`` the cut-out's colours are blur-fusion foreground estimates
(:mod:`visionzoo.predict.foreground`, BEN2's ``refine_foreground``); the mask is the same either way. Videos
(``clip.mp4`` ...) get a mask video, a cut-out with alpha and a green-screen video with the sound kept
(:mod:`visionzoo.predict.video`).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.data.images import IMAGE_SUFFIXES, LoadedImage, read_image, write_image
from visionzoo.data.transforms import image_to_tensor, resize_image
from visionzoo.errors import DataError
from visionzoo.files import ensure_writable_folder
from visionzoo.pixels import full_scale, unit_to_uint8
from visionzoo.predict.common import BatchReport, chunks, find_inputs, resolve_device
from visionzoo.predict.foreground import estimate_foreground
from visionzoo.predict.video import VIDEO_SUFFIXES, VideoTargets, cut_out_video, frame_count
from visionzoo.preprocessing import Preprocessing
from visionzoo.progress import file_progress

log = logging.getLogger(__name__)


def alpha_to_uint8(alpha: np.ndarray, normalize: bool) -> np.ndarray:
    """``(H, W)`` float alpha in [0, 1] -> uint8, optionally min-max stretched (flat maps are left as they are)."""
    alpha = alpha.astype(np.float32)
    if normalize:
        low, high = float(alpha.min()), float(alpha.max())
        if high - low > 1e-6:
            alpha = (alpha - low) / (high - low)
    return unit_to_uint8(alpha)


def compose_cutout(image: LoadedImage, mask: np.ndarray, refine_foreground: bool = False) -> np.ndarray:
    """RGBA cut-out in the image's own depth; an alpha channel the file already had is multiplied in.

    ``refine_foreground``: colours from :func:`~visionzoo.predict.foreground.estimate_foreground` under the mask
    instead of the image's own (no background tint at soft edges).
    """
    scale = full_scale(image.pixels.dtype)
    pixels = image.pixels
    if refine_foreground:
        estimate = estimate_foreground(pixels / scale, mask / 255.0)
        pixels = (estimate * scale + 0.5).astype(image.pixels.dtype)
    alpha = mask.astype(np.float32) / 255.0
    if image.alpha is not None:
        alpha *= image.alpha.astype(np.float32) / full_scale(image.alpha.dtype)
    alpha_channel = (alpha * scale + 0.5).astype(image.pixels.dtype)
    return np.dstack([pixels, alpha_channel])


class MaskModel:
    """A BEN network ready to mask images: each image resized to the square ``input_size`` with the card's filter
    and normalised, one forward pass per list, the alpha resized back to each image's own size.

    Shared by :class:`CutoutPredictor` (files) and the HTTP service (:mod:`visionzoo.serve`), so both give the same
    masks. Args as :class:`CutoutPredictor`'s.
    """

    def __init__(self, net: nn.Module, input_size: int | None = None, device: str = "auto", precision: str = "fp32",
                 compile: bool = False, preprocessing: Preprocessing | None = None) -> None:
        if precision not in ("fp32", "bf16"):
            raise DataError(f"predictor.precision must be fp32 or bf16, not {precision!r}")
        self.preprocessing = preprocessing or Preprocessing()
        if input_size is None:
            if self.preprocessing.input_size is None:
                raise DataError("predictor.input_size is not set and the model card gives none; pass "
                                "predictor.input_size=PIXELS")
            input_size = self.preprocessing.input_size[-1]
        self.input_size, self.precision = int(input_size), precision
        self.device = resolve_device(device)
        self.memory_format = torch.channels_last if self.preprocessing.channels_last else torch.contiguous_format
        self.net = net.eval().to(self.device, memory_format=self.memory_format)
        if compile:
            self.net = torch.compile(self.net)

    @torch.inference_mode()
    def predict_alpha(self, images: list[np.ndarray], input_size: int | None = None) -> list[np.ndarray]:
        """Float alpha ``(H, W)`` in [0, 1] at each image's own size, for ``(H, W, 3)`` uint8 RGB images, through
        the network at ``input_size`` (default: this model's) in one batch."""
        size = (input_size or self.input_size,) * 2
        batch = torch.stack([
            image_to_tensor(resize_image(im, size, self.preprocessing.resample), self.preprocessing.mean,
                            self.preprocessing.std) for im in images
        ]).to(self.device, memory_format=self.memory_format)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            alpha = self.net(batch)["alpha"].float()
        return [
            F.interpolate(a[None], size=im.shape[:2], mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
            for a, im in zip(alpha, images)
        ]


class CutoutPredictor:
    """Mask + cut-out writer over a file, folder or glob of images and videos.

    Args:
        net: a BEN model (``forward`` returns ``{"alpha": (B, 1, H, W), ...}``).
        input: file, folder or glob. output: folder for the results.
        input_size: square network input in pixels; ``None``: the model's (``preprocessing.input_size``).
        batch_size: images (or video frames) per forward pass. overwrite: redo inputs whose outputs exist.
        device: ``auto``, ``cpu``, ``cuda``... precision: ``fp32`` or ``bf16`` (autocast).
        normalize: min-max stretch each alpha map, as BEN's post-processing does.
        compile: ``torch.compile`` the model first (about a minute of compilation; pays off on large folders:
            1.90 s -> 1.50 s per 1024x1024 image for ben_dla34 on the 2-core CPU).
        preprocessing: what the model expects (its card's; the run passes it): the input size, normalisation,
            resize filter and memory layout (``channels_last``: faster for the DLA BENs on the CPU, not for BEN2).
        refine_foreground: blur-fusion foreground colours in the cut-out (the mask is unchanged).
        background: RGB colour behind the cut-out in the green-screen video of a video input.
        model: an already built :class:`MaskModel` to use instead of ``net`` and the settings above (the service's
            jobs share the loaded model).
    """

    def __init__(
        self,
        net: nn.Module | None,
        input: str,
        output: str,
        input_size: int | None = None,
        batch_size: int = 1,
        overwrite: bool = False,
        device: str = "auto",
        precision: str = "fp32",
        normalize: bool = True,
        compile: bool = False,
        refine_foreground: bool = False,
        background: Sequence[int] = (0, 255, 0),
        preprocessing: Preprocessing | None = None,
        model: MaskModel | None = None,
    ) -> None:
        self.model = model or MaskModel(net, input_size, device, precision, compile, preprocessing)
        self.predict_alpha = self.model.predict_alpha
        self.input, self.output = str(input), Path(output)
        self.batch_size, self.overwrite = int(batch_size), bool(overwrite)
        self.normalize = normalize
        self.refine_foreground = bool(refine_foreground)
        self.background = tuple(int(v) for v in background)

    def output_paths(self, inputs: list[Path]) -> dict[Path, tuple[Path, ...]]:
        """``{input: its output files}``: ``(mask, cut-out)`` PNGs for an image, the three files of
        :class:`~visionzoo.predict.video.VideoTargets` for a video; inputs sharing a stem keep their suffix in the
        name."""
        stems = Counter(p.stem for p in inputs)
        paths: dict[Path, tuple[Path, ...]] = {}
        for path in inputs:
            name = path.stem if stems[path.stem] == 1 else f"{path.stem}_{path.suffix[1:]}"
            if path.suffix.lower() in VIDEO_SUFFIXES:
                paths[path] = VideoTargets.beside(self.output, name).all()
            else:
                paths[path] = (self.output / f"{name}_mask.png", self.output / f"{name}_cutout.png")
        return paths

    def run(self) -> BatchReport:
        inputs, others = find_inputs(self.input, IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        ensure_writable_folder(self.output)
        report = BatchReport(ignored=others)
        targets = self.output_paths(inputs)
        todo = [p for p in inputs if self.overwrite or not all(t.exists() for t in targets[p])]
        report.finished = [p for p in inputs if p not in todo]
        images = [p for p in todo if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in todo if p.suffix.lower() in VIDEO_SUFFIXES]
        with file_progress() as bar:
            if images:
                self._cut_out_images(images, targets, report, bar)
            for video in videos:
                job = bar.add_task(video.name, total=frame_count(video))
                try:
                    cut_out_video(video, VideoTargets(*targets[video]), self.predict_alpha,
                                  lambda alpha: alpha_to_uint8(alpha, self.normalize), self.batch_size,
                                  self.refine_foreground, self.background, lambda n, job=job: bar.advance(job, n))
                    report.written.append(video)
                except DataError as err:
                    report.failed[video] = str(err)
        report.print()
        if report.failed and not report.written and not report.finished:
            raise DataError(f"none of the {len(inputs)} inputs could be processed; see the failures above")
        return report

    def _cut_out_images(self, images: list[Path], targets: dict[Path, tuple[Path, ...]], report: BatchReport,
                        bar) -> None:
        job = bar.add_task("cut-outs", total=len(images))
        for group in chunks(images, self.batch_size):
            loaded = []
            for path in group:
                try:
                    loaded.append(read_image(path))
                except DataError as err:
                    report.failed[path] = str(err)
                    bar.advance(job)
            if not loaded:
                continue
            alphas = self.predict_alpha([image.rgb8() for image in loaded])
            for image, alpha in zip(loaded, alphas):
                mask = alpha_to_uint8(alpha, self.normalize)
                mask_path, cutout_path = targets[image.path]
                try:
                    write_image(mask_path, mask)
                    write_image(cutout_path, compose_cutout(image, mask, self.refine_foreground))
                    report.written.append(image.path)
                except DataError as err:
                    report.failed[image.path] = str(err)
                bar.advance(job)
