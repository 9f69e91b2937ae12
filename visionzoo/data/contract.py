"""What a task may read from its datamodule besides the loaders: declared here, once, as protocols.

A task asks :func:`datamodule_of` for the trainer's datamodule *as* one of these contracts and gets ``None`` when
there is none or it does not provide it (loaders passed straight to ``trainer.test``, a user's own datamodule);
the task then falls back to its documented default. Every zoo datamodule states which contracts it meets
(``tests/data/test_contract.py`` checks them).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, TypeVar, runtime_checkable

import torch


@runtime_checkable
class NamedSplits(Protocol):
    """Several validation / test loaders, named in loader order (DIS5K: ``DIS-VD``; ``DIS-TE1`` ... ``DIS-TE4``)."""

    val_splits: Sequence[str]
    test_splits: Sequence[str]


@runtime_checkable
class CameraRig(Protocol):
    """Multi-camera samples: camera names in the order of ``batch["images"]``'s camera axis, and the training
    split's camera-visible voxel counts per class (``(18,)``), for the cross-entropy class weights."""

    cameras: Sequence[str]

    def class_counts(self, split: str = "train", max_samples: int = 500) -> torch.Tensor: ...


@runtime_checkable
class SyntheticNoise(Protocol):
    """Noisy images made from clean ones: the noise kind (``gaussian`` / ``poisson``) and its sigma (0..255)."""

    noise: str
    sigma: float


Contract = TypeVar("Contract")


def datamodule_of(trainer: Any, contract: type[Contract]) -> Contract | None:
    """``trainer.datamodule`` when it meets ``contract``, else ``None``."""
    datamodule = getattr(trainer, "datamodule", None)
    return datamodule if isinstance(datamodule, contract) else None
