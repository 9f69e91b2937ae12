"""Reproducible training order and augmentation: every draw depends only on (seed, epoch, sample).

:class:`EpochShuffle` yields ``(epoch, index)`` pairs in an order drawn from ``(seed, epoch)``; datasets turn the
pair into their augmentation generator with :func:`sample_rng`. Nothing depends on which DataLoader worker loads a
sample, on worker persistence or on how the run got to this epoch, so a run resumed from a checkpoint replays the
remaining epochs exactly as the uninterrupted run would. Lightning calls :meth:`EpochShuffle.set_epoch` at the start
of every epoch (and forwards it through its distributed sampler wrapper under DDP).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochShuffle(Sampler):
    """A random permutation of ``range(size)`` per epoch, seeded by ``(seed, epoch)``, as ``(epoch, index)`` pairs."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter([(self.epoch, int(i)) for i in torch.randperm(self.size, generator=generator)])

    def __len__(self) -> int:
        return self.size


def sample_rng(key: int | tuple[int, int], seed: int) -> tuple[int, np.random.Generator]:
    """The sample index and its augmentation generator for a dataset key: an ``(epoch, index)`` pair from
    :class:`EpochShuffle` (seeded by ``seed, epoch, index``) or a bare index (seeded from torch's generator, as a
    plain shuffled DataLoader would)."""
    if isinstance(key, (tuple, list)):
        epoch, index = int(key[0]), int(key[1])
        return index, np.random.default_rng((seed, epoch, index))
    return int(key), np.random.default_rng(int(torch.randint(0, 2**62, ())))


def split_loader(dataset: Dataset, train: bool, batch_size: int, num_workers: int, seed: int,
                 collate_fn: Callable[[list], Any]) -> DataLoader:
    """The DataLoader every datamodule uses: training in :class:`EpochShuffle` order, dropping a last partial
    batch (when there is more than one); evaluation in file order. Workers persist across epochs."""
    return DataLoader(dataset, batch_size=batch_size, sampler=EpochShuffle(len(dataset), seed) if train else None,
                      drop_last=train and len(dataset) > batch_size, num_workers=num_workers,
                      persistent_workers=num_workers > 0, collate_fn=collate_fn)
