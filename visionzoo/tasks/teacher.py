"""The teacher of a distillation: a frozen BEN whose soft masks a student learns, and its mask cache.

The teacher is held by :class:`~visionzoo.tasks.distill.BENDistillTask` outside its module tree, so it is never
trained, never saved in the student's checkpoints and never wrapped by DDP. Its masks are written once per photo
(:func:`write_teacher_masks`: 8-bit PNGs at the photo's own resolution, resumable, unreadable photos reported and
skipped) and the folder remembers which teacher wrote it (``teacher.json``), so a cache from other weights or
another input size is never mistaken for this one's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from rich.progress import track
from torch import nn

from visionzoo.data.images import read_image, write_image
from visionzoo.data.transforms import image_to_tensor, resize_image
from visionzoo.errors import DataError, VisionZooError
from visionzoo.files import atomic_write
from visionzoo.models.factory import create_model
from visionzoo.models.registry import list_models, model_card, resolve_preprocessing
from visionzoo.pixels import unit_to_uint8
from visionzoo.preprocessing import Preprocessing

#: Records which teacher wrote a target folder.
FINGERPRINT_FILE = "teacher.json"
PRECISIONS = ("auto", "fp32", "bf16")


class Teacher:
    """A frozen network that returns ``{"alpha": (B, 1, H, W) in [0, 1]}``, run without gradients.

    Args:
        net: the network (eval mode, no gradients after construction).
        name: its registered name. weights: where its weights came from (file, URL or hub name).
        input_size: (height, width) the teacher sees, in pixels.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32`` or ``bf16``.
        preprocessing: what the teacher expects of its input (its card's): the photos are resized for it with its
            filter (:func:`write_teacher_masks`).
    """

    def __init__(self, net: nn.Module, name: str, weights: str, input_size: tuple[int, int],
                 precision: str = "auto", preprocessing: Preprocessing | None = None) -> None:
        if precision not in PRECISIONS:
            raise VisionZooError(f"teacher.precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.net = net.eval().requires_grad_(False)
        self.name, self.weights, self.input_size, self.precision = name, str(weights), input_size, precision
        self.preprocessing = preprocessing or Preprocessing()

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> "Teacher":
        self.net.to(device)
        return self

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.precision == "bf16" or (self.precision == "auto" and self.device.type == "cuda"):
            return torch.bfloat16
        return None

    @torch.no_grad()
    def alpha(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images at :attr:`input_size` -> ``(B, 1, H, W)`` float32 soft masks."""
        if tuple(images.shape[-2:]) != tuple(self.input_size):
            raise VisionZooError(f"the teacher takes {self.input_size[0]}x{self.input_size[1]} inputs but got "
                                 f"{images.shape[-2]}x{images.shape[-1]}")
        dtype = self._autocast_dtype()
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            alpha = self.net(images.to(self.device))["alpha"]
        return alpha.float().clamp(0, 1)

    def fingerprint(self) -> dict[str, object]:
        """What makes two teachers' masks interchangeable: name, weights (path, size, mtime), input size and its
        resize filter."""
        record: dict[str, object] = {"name": self.name, "weights": self.weights, "input_size": list(self.input_size),
                                     "resample": self.preprocessing.resample}
        path = Path(self.weights)
        files = sorted(path.iterdir()) if path.is_dir() else [path] if path.is_file() else []
        if files:  # a local file or save_pretrained folder: its files' sizes and times tell its versions apart
            record.update(weights=str(path.resolve()),
                          files={f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()})
        return record


def load_teacher(name: str, weights: str | None, input_size: int | Sequence[int], precision: str = "auto") -> Teacher:
    """Build the registered BEN ``name`` with ``weights`` (a file, a zoo checkpoint, a URL or an ``hf-hub:``
    name) as a :class:`Teacher`; one clear line when the weights are not given or the model is not a BEN."""
    if name not in list_models(task="matting"):
        kind = f"not a matting model (it is for {model_card(name).task})" if name in list_models() else "not a registered model"
        raise VisionZooError(f"teacher.name={name} is {kind}; the teacher must be one of "
                             f"{', '.join(list_models(task='matting'))}")
    if weights is None:
        raise VisionZooError("teacher.weights is not set; pass teacher.weights=PATH (BEN2_Base.pth, "
                             "model.safetensors, a zoo BEN checkpoint) or a URL / hf-hub: name")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    net = create_model(name, pretrained=weights)
    return Teacher(net, name, weights, (int(size[0]), int(size[1])), precision, resolve_preprocessing(name))


def check_target_folder(folder: Path, teacher: Teacher) -> None:
    """Claim ``folder`` for ``teacher``'s masks, or fail in one line when another teacher's masks are in it."""
    marker = folder / FINGERPRINT_FILE
    fingerprint = teacher.fingerprint()
    if marker.is_file():
        recorded = json.loads(marker.read_text())
        if recorded != fingerprint:
            raise DataError(f"{folder} holds masks of another teacher ({recorded.get('name')} from "
                            f"{recorded.get('weights')} at {recorded.get('input_size')}); delete the folder or set "
                            "data.targets_dir to a new one")
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(marker, lambda tmp: Path(tmp).write_text(json.dumps(fingerprint, indent=2) + "\n"))


def write_teacher_masks(teacher: Teacher, jobs: Sequence[tuple[Path, Path]], batch_size: int = 4,
                        progress: bool = True) -> dict[Path, str]:
    """Write the teacher's mask of each ``(photo, target)`` pair whose target does not exist yet.

    Each photo is read upright, resized to the teacher's input with its filter and normalised as its card says
    (``teacher.preprocessing``), and its soft mask resized back
    to the photo's size (bilinear) and written as an 8-bit PNG (no stretching). Returns the photos that failed,
    with the reason; the others' masks are complete files (atomic writes), so an interrupted run resumes.
    """
    pending = [(photo, target) for photo, target in jobs if not target.is_file()]
    failed: dict[Path, str] = {}
    batches = [pending[i : i + max(1, batch_size)] for i in range(0, len(pending), max(1, batch_size))]
    steps = track(batches, description="teacher masks", disable=not progress or not pending, transient=True)
    for batch in steps:
        sizes, tensors, targets = [], [], []
        for photo, target in batch:
            try:
                rgb = read_image(photo).rgb8()
            except DataError as err:
                failed[photo] = str(err)
                continue
            sizes.append(rgb.shape[:2])
            pre = teacher.preprocessing
            tensors.append(image_to_tensor(resize_image(rgb, teacher.input_size, pre.resample), pre.mean, pre.std))
            targets.append(target)
        if not tensors:
            continue
        alphas = teacher.alpha(torch.stack(tensors))
        for alpha, size, target in zip(alphas, sizes, targets):
            full = F.interpolate(alpha[None], size=size, mode="bilinear", align_corners=False)[0, 0]
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, unit_to_uint8(full).cpu().numpy())
    for photo, reason in failed.items():
        logging.getLogger(__name__).warning("teacher mask skipped: %s: %s", photo, reason)
    return failed


def uncertain_band(target: torch.Tensor, confidence: float = 0.9, dilation: int = 7) -> torch.Tensor:
    """``(B, 1, H, W)`` 0/1 map of the pixels where the soft ``target`` is unsure (``|2t - 1| < confidence``),
    grown by ``dilation`` pixels (odd, a square neighbourhood): where a Refiner has work to do."""
    unsure = ((2 * target - 1).abs() < confidence).float()
    if dilation > 1:
        unsure = F.max_pool2d(unsure, dilation, stride=1, padding=dilation // 2)
    return unsure

