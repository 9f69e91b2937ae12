"""LightningDataModule for Occ3D-nuScenes (real, or the synthetic worlds generated on first use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from visionzoo.constants import OCC3D_CLASSES
from visionzoo.data.occ3d import ImageAugment, Occ3DDataset, collate_occ3d, occ3d_records, read_labels
from visionzoo.data.sampling import split_loader
from visionzoo.data.synthetic_occ3d import generate_synthetic_occ3d
from visionzoo.errors import DataError
from visionzoo.geometry import OCC3D_GRID, as_grid
from visionzoo.preprocessing import Preprocessing


class Occ3DDataModule(L.LightningDataModule):
    """Occ3D train / val splits as DataLoaders (the val split is also the test split, as in the benchmark).

    Args:
        root: the nuScenes folder holding the info pickles, ``samples/`` and ``gts/``. Ignored with ``synthetic``.
        grid: the label grid's fields (:class:`~visionzoo.geometry.OccupancyGrid`); ``None``: the model's
            (``preprocessing.grid``), else Occ3D's. The synthetic worlds are generated on it.
        input_size: network input (height, width) in pixels.
        augment: :class:`~visionzoo.data.occ3d.ImageAugment` fields other than ``size`` (training only).
        bev_flip: random BEV flips in training.
        limit: use only the first ``limit`` samples of each split (quick runs); ``None`` uses all.
        synthetic: :class:`~visionzoo.data.synthetic_occ3d.WorldSettings` fields plus ``cache_dir``.
        seed: seeds the training order and augmentation per epoch (:mod:`visionzoo.data.sampling`).
        preprocessing: what the model expects (its card's; the run passes it): the camera order, the key ego frame,
            the frames per sample, the image resize (``area``: the zoo's affine warp; ``bicubic``: BEVDet's Pillow
            steps), normalisation and the grid.
    """

    def __init__(
        self,
        root: str | None = None,
        grid: dict[str, Any] | None = None,
        input_size: Sequence[int] = (256, 704),
        batch_size: int = 4,
        eval_batch_size: int = 4,
        num_workers: int = 4,
        augment: dict[str, Any] | None = None,
        bev_flip: bool = True,
        limit: int | None = None,
        synthetic: dict[str, Any] | None = None,
        seed: int = 0,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        self.seed, self.preprocessing = seed, preprocessing or Preprocessing()
        if root is None and synthetic is None:
            raise DataError("data.root is not set; pass data.root=PATH/TO/nuscenes (or use data=occ3d_synthetic)")
        self.root, self.synthetic = root, dict(synthetic) if synthetic else None
        self.grid = as_grid(grid, self.preprocessing.grid or OCC3D_GRID)
        self.cameras = list(self.preprocessing.cameras)
        self.augment = ImageAugment(size=(int(input_size[0]), int(input_size[1])), **(augment or {}))
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.bev_flip, self.limit = bev_flip, limit

    def data_root(self) -> Path:
        """The root in use (generating the synthetic worlds first when configured)."""
        if self.synthetic is not None:
            settings = dict(self.synthetic)
            cache_dir = settings.pop("cache_dir")
            grid = (self.grid.x_range, self.grid.y_range, self.grid.z_range, self.grid.voxel)
            return generate_synthetic_occ3d(cache_dir, grid=grid, **settings)
        return Path(self.root)

    def prepare_data(self) -> None:
        self.data_root()

    def records(self, split: str):
        records = occ3d_records(self.data_root(), split, self.cameras, key_ego=self.preprocessing.key_ego,
                                frames=self.preprocessing.frames)
        return records[: self.limit] if self.limit else records

    def dataset(self, split: str, train: bool = False) -> Occ3DDataset:
        return Occ3DDataset(self.records(split), self.grid, self.augment, train=train, bev_flip=self.bev_flip,
                            seed=self.seed, preprocessing=self.preprocessing)

    def class_counts(self, split: str = "train", max_samples: int = 500) -> torch.Tensor:
        """``(18,)`` camera-visible voxel counts per class over up to ``max_samples`` evenly spaced samples."""
        records = self.records(split)
        picks = np.unique(np.linspace(0, len(records) - 1, min(max_samples, len(records))).round().astype(int))
        counts = np.zeros(len(OCC3D_CLASSES), dtype=np.int64)
        for i in picks:
            labels = read_labels(records[i].labels_path, self.grid, records[i].token)
            visible = labels["semantics"][labels["mask_camera"] > 0]
            counts += np.bincount(visible, minlength=len(OCC3D_CLASSES))[: len(OCC3D_CLASSES)]
        return torch.from_numpy(counts)

    def _loader(self, split: str, train: bool) -> DataLoader:
        return split_loader(self.dataset(split, train), train, self.batch_size if train else self.eval_batch_size,
                            self.num_workers, self.seed, collate_occ3d)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("val", False)
