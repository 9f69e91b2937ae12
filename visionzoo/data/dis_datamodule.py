"""LightningDataModule for DIS5K (real, or the synthetic stand-in generated on first use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
from torch.utils.data import DataLoader

from visionzoo.data.dis5k import DIS5K_TEST_SPLITS, DISDataset, collate_dis, dis5k_pairs
from visionzoo.data.sampling import split_loader
from visionzoo.data.synthetic_dis import generate_synthetic_dis
from visionzoo.data.transforms import PairedAugment
from visionzoo.errors import DataError
from visionzoo.preprocessing import Preprocessing


class DISDataModule(L.LightningDataModule):
    """DIS5K splits as DataLoaders.

    Args:
        root: folder holding ``DIS5K/`` (or the DIS5K folder itself). Ignored when ``synthetic`` is set.
        input_size: network input, an int (square) or (height, width), in pixels.
        batch_size / eval_batch_size / num_workers: loader settings.
        train_split, val_split, test_splits: split folder names.
        on_mismatch: ``"raise"`` (one error listing unpaired/size-mismatched files) or ``"skip"`` (report, leave out).
        augment: keyword arguments of :class:`~visionzoo.data.transforms.PairedAugment` for training.
        synthetic: ``{"cache_dir": ..., "seed": 0, "counts": {...}}`` to generate and use the synthetic DIS5K.
        seed: seeds the training order and augmentation per epoch (:mod:`visionzoo.data.sampling`).
        preprocessing: what the model expects of its input (its card's; the run passes it): normalisation and
            the evaluation resize's filter.
    """

    def __init__(
        self,
        root: str | None = None,
        input_size: int | Sequence[int] = 1024,
        batch_size: int = 4,
        eval_batch_size: int = 4,
        num_workers: int = 2,
        train_split: str = "DIS-TR",
        val_split: str = "DIS-VD",
        test_splits: Sequence[str] = DIS5K_TEST_SPLITS,
        on_mismatch: str = "raise",
        augment: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        seed: int = 0,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        self.seed, self.preprocessing = seed, preprocessing or Preprocessing()
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.size = (int(size[0]), int(size[1]))
        self.root, self.synthetic = root, dict(synthetic) if synthetic else None
        if self.root is None and self.synthetic is None:
            raise DataError("data.root is not set; pass data.root=PATH/TO/DIS5K (or use data=dis5k_synthetic)")
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.train_split, self.val_split = train_split, val_split
        self.val_splits, self.test_splits = [val_split], list(test_splits)  # NamedSplits
        self.on_mismatch = on_mismatch
        self.augment = PairedAugment(size=self.size, **(augment or {}))

    def data_root(self) -> Path:
        """The DIS5K root in use (generating the synthetic set first when configured)."""
        if self.synthetic is not None:
            settings = dict(self.synthetic)
            cache_dir = settings.pop("cache_dir")
            return generate_synthetic_dis(cache_dir, **settings)
        return Path(self.root)

    def prepare_data(self) -> None:
        self.data_root()

    def _dataset(self, split: str, train: bool) -> DISDataset:
        pairs = dis5k_pairs(self.data_root(), split, on_mismatch=self.on_mismatch)
        return DISDataset(pairs, self.size, augment=self.augment if train else None, seed=self.seed,
                          preprocessing=self.preprocessing)

    def _loader(self, dataset: DISDataset, train: bool) -> DataLoader:
        return split_loader(dataset, train, self.batch_size if train else self.eval_batch_size, self.num_workers,
                            self.seed, collate_dis)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.train_split, train=True), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset(self.val_split, train=False), train=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(self._dataset(split, train=False), train=False) for split in self.test_splits]
