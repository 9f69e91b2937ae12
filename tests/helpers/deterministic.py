"""Deterministic weights made from each state-dict key's name and shape, for golden tests against official code.

The same function fills a published implementation and the zoo's port with identical weights (their keys and
shapes are identical), without any checkpoint download. It is a documented function of (name, shape):

* the random stream of a key is ``torch.Generator().manual_seed(zlib.crc32(name))``, drawing ``randn(shape)``;
* tensors with 2 or more dimensions (convolution, linear and attention weights): ``randn / sqrt(fan_in)`` with
  ``fan_in`` the product of all dimensions but the first;
* 1-D ``weight`` (the scale of a normalisation layer): ``1 + 0.1 randn``;
* ``running_var``: ``1 + 0.1 |randn|``; ``running_mean``: ``0.1 randn``;
* other float tensors (biases, position-bias tables): ``0.02 randn``;
* integer tensors (index buffers, ``num_batches_tracked``) keep the reference's values.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping

import torch


def deterministic_tensor(name: str, reference: torch.Tensor) -> torch.Tensor:
    """The deterministic value of one state-dict entry (see the module docstring)."""
    if not reference.dtype.is_floating_point:
        return reference.clone()
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    noise = torch.randn(reference.shape, generator=generator, dtype=torch.float64)
    leaf = name.rsplit(".", 1)[-1]
    if reference.dim() >= 2:
        value = noise / math.sqrt(max(1, math.prod(reference.shape[1:])))
    elif leaf == "running_var":
        value = 1 + 0.1 * noise.abs()
    elif leaf == "running_mean":
        value = 0.1 * noise
    elif leaf == "weight":
        value = 1 + 0.1 * noise
    else:
        value = 0.02 * noise
    return value.to(reference.dtype)


def deterministic_state_dict(reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{name: deterministic_tensor(name, tensor)}`` for every entry of ``reference`` (a model's state dict)."""
    return {name: deterministic_tensor(name, tensor) for name, tensor in reference.items()}


def golden_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``randn(shape)`` from ``torch.Generator().manual_seed(seed)`` (float32): the input of golden tests."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))
