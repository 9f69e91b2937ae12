"""DIS5K in its real layout: ``DIS5K/<split>/im/*.jpg`` + ``DIS5K/<split>/gt/*.png``, paired by file stem.

Splits: DIS-TR (train), DIS-VD (validation), DIS-TE1..DIS-TE4 (test, four complexity levels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from visionzoo.data.images import IMAGE_SUFFIXES, read_image, read_mask
from visionzoo.data.sampling import sample_rng
from visionzoo.data.transforms import PairedAugment, image_to_tensor, mask_to_tensor, resize_pair
from visionzoo.errors import DataError
from visionzoo.preprocessing import Preprocessing

log = logging.getLogger(__name__)

DIS5K_SPLITS = ("DIS-TR", "DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
DIS5K_TEST_SPLITS = ("DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
_SHOWN = 5


@dataclass(frozen=True)
class DISPair:
    image: Path
    mask: Path | None  # None: no target on disk (training items get an all-zero mask, filled in by the task)

    @property
    def name(self) -> str:
        return self.image.stem


def dis5k_root(root: str | Path) -> Path:
    """The folder holding the split folders: ``root`` itself or ``root/DIS5K``."""
    root = Path(root).expanduser()
    if (root / "DIS5K").is_dir():
        root = root / "DIS5K"
    if not root.is_dir():
        raise DataError(f"DIS5K root {root} does not exist; set data.root to the folder that holds DIS-TR, DIS-VD ...")
    return root


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header, ``None`` when it is not a readable image."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def file_listing(names: Sequence[str]) -> str:
    """The first few names, and how many there are in all: for one-line error messages."""
    shown = ", ".join(names[:_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")


def dis5k_pairs(root: str | Path, split: str, on_mismatch: str = "raise") -> list[DISPair]:
    """Image/mask pairs of one split, sorted by name.

    Unpaired files, unreadable files and image/mask size mismatches are collected and reported together: in one
    :class:`DataError` when ``on_mismatch="raise"``, or in one warning (and left out) when ``"skip"``.
    Image sizes are read from the file headers (EXIF rotation is not applied, as in the DIS tools).
    """
    if on_mismatch not in ("raise", "skip"):
        raise DataError(f"data.on_mismatch must be 'raise' or 'skip', not {on_mismatch!r}")
    split_dir = dis5k_root(root) / split
    image_dir, mask_dir = split_dir / "im", split_dir / "gt"
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise DataError(f"{folder} is missing; a DIS5K split needs im/ (images) and gt/ (masks) folders")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    problems: list[str] = []
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        problems.append(f"{len(no_mask)} images without a mask ({file_listing([images[s].name for s in no_mask])})")
    if no_image:
        problems.append(f"{len(no_image)} masks without an image ({file_listing([masks[s].name for s in no_image])})")
    pairs, unreadable, mismatched = [], [], []
    for stem in sorted(set(images) & set(masks)):
        picture_size, mask_size = image_size(images[stem]), image_size(masks[stem])
        if picture_size is None or mask_size is None:
            unreadable.append((images[stem] if picture_size is None else masks[stem]).name)
        elif picture_size != mask_size:
            mismatched.append(f"{stem} {picture_size[0]}x{picture_size[1]} vs {mask_size[0]}x{mask_size[1]}")
        else:
            pairs.append(DISPair(images[stem], masks[stem]))
    if unreadable:
        problems.append(f"{len(unreadable)} unreadable files ({file_listing(unreadable)})")
    if mismatched:
        problems.append(f"{len(mismatched)} image/mask size mismatches ({file_listing(mismatched)})")
    if problems:
        message = f"{split_dir}: " + "; ".join(problems)
        if on_mismatch == "raise":
            raise DataError(message + "; fix them or set data.on_mismatch=skip to leave them out")
        log.warning("%s; left out", message)
    if not pairs:
        raise DataError(f"{split_dir} has no image/mask pairs; check data.root points at DIS5K")
    return pairs


class DISDataset(Dataset):
    """One DIS5K split as tensors.

    Training items (``augment`` given): ``image`` (3, H, W) normalised and ``mask`` (1, H, W) in [0, 1] at
    ``size`` = (H, W). Evaluation items (``augment=None``): the same at the fixed ``size``, plus ``gt`` (the
    original-resolution uint8 mask, for metrics), ``gt_path`` and ``name``. ``preprocessing`` (what the model
    expects) gives the normalisation and the evaluation resize's filter
    (:func:`~visionzoo.data.transforms.resize_image`).
    """

    def __init__(self, pairs: Sequence[DISPair], size: tuple[int, int], augment: PairedAugment | None = None,
                 seed: int = 0, preprocessing: Preprocessing | None = None) -> None:
        self.pairs = list(pairs)
        self.size = (int(size[0]), int(size[1]))
        self.augment, self.seed = augment, seed
        self.preprocessing = preprocessing or Preprocessing()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key``: an index, or an ``(epoch, index)`` pair from :class:`~visionzoo.data.sampling.EpochShuffle`
        (the augmentation is then drawn from ``(seed, epoch, index)``)."""
        index, rng = sample_rng(key, self.seed)
        pair = self.pairs[index]
        image = read_image(pair.image).rgb8()
        gt = read_mask(pair.mask) if pair.mask is not None else np.zeros(image.shape[:2], np.uint8)
        if image.shape[:2] != gt.shape:
            raise DataError(f"{pair.image} is {image.shape[1]}x{image.shape[0]} but {pair.mask} is "
                            f"{gt.shape[1]}x{gt.shape[0]} (after EXIF rotation); fix or remove the pair")
        mean, std = self.preprocessing.mean, self.preprocessing.std
        if self.augment is not None:
            image, mask = self.augment(image, gt, rng)
            return {"image": image_to_tensor(image, mean, std), "mask": mask_to_tensor(mask)}
        image, mask = resize_pair(image, gt, self.size, self.preprocessing.resample)
        return {"image": image_to_tensor(image, mean, std), "mask": mask_to_tensor(mask), "gt": gt,
                "gt_path": str(pair.mask), "name": pair.name}


def collate_dis(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep variable-size ground truths and names as lists."""
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
