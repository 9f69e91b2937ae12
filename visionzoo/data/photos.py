"""A folder of the user's own photos (no masks) with a teacher's soft masks as targets, for distillation.

Photos are every image under ``root``, recursively (hidden files and folders skipped). A fixed fraction is held
out for validation and testing, chosen by a hash of each photo's path relative to ``root``: adding photos never
moves an old one between the splits. Each photo's target is the teacher's soft mask, an 8-bit PNG at the photo's
own (upright) resolution in ``targets_dir`` under the photo's relative path (``a/b.jpg`` -> ``a/b.png``); the
distillation task writes them (:class:`~visionzoo.tasks.distill.BENDistillTask`). With ``targets=online`` the
training photos get their targets from the teacher on each augmented batch instead and only the held-out photos
are cached.

Training items are augmented image/target pairs, exactly as DIS5K training pairs (:class:`DISDataset`); held-out
items carry the target at full resolution as ``gt``, so the DIS metrics score agreement with the teacher. With
``dis5k_root`` the real DIS5K splits are evaluated beside them.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Sequence

import lightning as L
from torch.utils.data import DataLoader

from visionzoo.data.dis5k import (DIS5K_TEST_SPLITS, DISDataset, DISPair, file_listing, collate_dis, dis5k_pairs,
                                  image_size)
from visionzoo.data.images import IMAGE_SUFFIXES
from visionzoo.data.sampling import split_loader
from visionzoo.data.transforms import PairedAugment
from visionzoo.errors import DataError
from visionzoo.preprocessing import Preprocessing

log = logging.getLogger(__name__)

#: Name of the held-out photos in results tables and pictures.
HELD_OUT = "held-out photos"
TARGET_MODES = ("cached", "online")


def find_photos(root: str | Path) -> list[Path]:
    """Image files under ``root``, recursively and sorted; hidden files and folders are skipped.

    Raises :class:`DataError` naming ``root`` when it is missing or holds no image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root {root} is not a folder; point data.root at a folder of photos")
    photos = sorted(
        path for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )
    if not photos:
        raise DataError(f"data.root {root} holds no images ({', '.join(IMAGE_SUFFIXES)}), not even in subfolders; "
                        "point data.root at a folder of photos")
    return photos


def is_held_out(relative: Path, fraction: float, seed: int) -> bool:
    """Whether a photo (by its path relative to the root) belongs to the held-out split."""
    digest = hashlib.sha1(f"{seed}|{relative.as_posix()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_photos(root: Path, photos: Sequence[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out) photos; with two or more photos each split gets at least one."""
    held_out = {p for p in photos if is_held_out(p.relative_to(root), fraction, seed)}
    held = [p for p in photos if p in held_out]
    train = [p for p in photos if p not in held_out]
    if len(photos) >= 2 and not held:
        held, train = train[-1:], train[:-1]
    elif len(photos) >= 2 and not train:
        train, held = held[:1], held[1:]
    return train, held


class PhotoDataModule(L.LightningDataModule):
    """The user's photos with teacher targets as DataLoaders (and DIS5K splits when ``dis5k_root`` is given).

    Args:
        root: folder of photos (searched recursively).
        targets_dir: folder of the teacher's masks (written by the distillation task, resumable).
        targets: ``cached`` (every photo's target computed once) or ``online`` (training targets computed by the
            teacher on each augmented batch; only the held-out photos are cached).
        input_size: network input, an int (square) or (height, width), in pixels; the teacher's too.
        val_fraction: share of the photos held out (validation and test), chosen by path hash.
        dis5k_root: optional DIS5K root: DIS-VD is validated and the DIS5K test splits are tested beside the
            held-out photos, against their real masks.
        batch_size / eval_batch_size / num_workers / augment / seed / preprocessing: as
            :class:`~visionzoo.data.dis_datamodule.DISDataModule`.
    """

    def __init__(
        self,
        root: str | None = None,
        targets_dir: str | None = None,
        targets: str = "cached",
        input_size: int | Sequence[int] = 1024,
        val_fraction: float = 0.1,
        dis5k_root: str | None = None,
        batch_size: int = 4,
        eval_batch_size: int = 4,
        num_workers: int = 2,
        augment: dict[str, Any] | None = None,
        seed: int = 0,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        if root is None:
            raise DataError("data.root is not set; pass data.root=PATH/TO/PHOTOS (any folder of images)")
        if targets_dir is None:
            raise DataError("data.targets_dir is not set; pass a folder for the teacher's masks")
        if targets not in TARGET_MODES:
            raise DataError(f"data.targets must be one of {', '.join(TARGET_MODES)}, not {targets!r}")
        if not 0 < val_fraction < 1:
            raise DataError(f"data.val_fraction must be between 0 and 1, not {val_fraction}")
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.size = (int(size[0]), int(size[1]))
        self.root, self.targets_dir = Path(root).expanduser(), Path(targets_dir).expanduser()
        self.targets, self.val_fraction, self.seed = targets, val_fraction, seed
        self.preprocessing = preprocessing or Preprocessing()
        self.dis5k_root = dis5k_root
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.augment = PairedAugment(size=self.size, **(augment or {}))
        self.val_splits = [HELD_OUT] + (["DIS-VD"] if dis5k_root else [])
        self.test_splits = [HELD_OUT] + (list(DIS5K_TEST_SPLITS) if dis5k_root else [])
        self._photos: tuple[list[Path], list[Path]] | None = None

    # ---- the contract the distillation task uses --------------------------------------------------------------
    def photos(self, split: str) -> list[Path]:
        """``train`` or ``held-out`` photos that are readable images (unreadable ones are reported once)."""
        if self._photos is None:
            readable, unreadable = [], []
            for photo in find_photos(self.root):
                (readable if image_size(photo) is not None else unreadable).append(photo)
            if unreadable:
                log.warning("%d unreadable images left out: %s", len(unreadable), file_listing([str(p) for p in unreadable]))
            if len(readable) < 2:
                raise DataError(f"data.root {self.root} holds {len(readable)} readable images; distillation needs at "
                                "least 2 (some to train on, some held out)")
            self._photos = split_photos(self.root, readable, self.val_fraction, self.seed)
        train, held = self._photos
        return train if split == "train" else held

    def photos_needing_targets(self) -> list[Path]:
        """Photos whose teacher masks are cached (every photo, or only the held-out ones with ``online``)."""
        return (self.photos("train") if self.targets == "cached" else []) + self.photos(HELD_OUT)

    def target_path(self, photo: Path) -> Path:
        """Where the teacher's mask of ``photo`` lives."""
        return self.targets_dir / photo.relative_to(self.root).with_suffix(".png")

    # ---- loaders ---------------------------------------------------------------------------------------------
    def _pairs(self, split: str, need_targets: bool) -> list[DISPair]:
        photos = self.photos(split)
        if not need_targets:
            return [DISPair(photo, None) for photo in photos]
        pairs = [DISPair(photo, self.target_path(photo)) for photo in photos]
        missing = [pair.image for pair in pairs if not pair.mask.is_file()]
        if missing:
            log.warning("%d photos have no teacher mask in %s (the teacher failed on them) and are left out: %s",
                        len(missing), self.targets_dir, file_listing([str(p) for p in missing]))
        pairs = [pair for pair in pairs if pair.mask.is_file()]
        if not pairs:
            raise DataError(f"no {split} photo under {self.root} has a teacher mask in {self.targets_dir}")
        return pairs

    def _loader(self, dataset: DISDataset, train: bool) -> DataLoader:
        return split_loader(dataset, train, self.batch_size if train else self.eval_batch_size, self.num_workers,
                            self.seed, collate_dis)

    def _held_out_loader(self) -> DataLoader:
        dataset = DISDataset(self._pairs(HELD_OUT, True), self.size, seed=self.seed, preprocessing=self.preprocessing)
        return self._loader(dataset, train=False)

    def _dis5k_loader(self, split: str) -> DataLoader:
        dataset = DISDataset(dis5k_pairs(self.dis5k_root, split), self.size, seed=self.seed,
                             preprocessing=self.preprocessing)
        return self._loader(dataset, train=False)

    def train_dataloader(self) -> DataLoader:
        pairs = self._pairs("train", need_targets=self.targets == "cached")
        if not pairs:
            raise DataError(f"every photo under {self.root} is held out; add photos or lower data.val_fraction")
        dataset = DISDataset(pairs, self.size, augment=self.augment, seed=self.seed, preprocessing=self.preprocessing)
        return self._loader(dataset, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._held_out_loader()] + [self._dis5k_loader(s) for s in self.val_splits[1:]]

    def test_dataloader(self) -> list[DataLoader]:
        return [self._held_out_loader()] + [self._dis5k_loader(s) for s in self.test_splits[1:]]

