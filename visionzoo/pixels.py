"""Pixel scales: 8/16-bit integer pixels <-> floats in [0, 1], for NumPy arrays and torch tensors alike.

One place for the conversions every layer needs (readers, models' estimators, tasks' pictures, predictors); it
imports nothing from visionzoo. Floats are rounded to the nearest level (``x * 255 + 0.5``, clipped to [0, 1]
first), never truncated.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Values = TypeVar("Values", np.ndarray, torch.Tensor)


def full_scale(dtype: np.dtype | type) -> float:
    """The value of full intensity: 65535 for 16-bit integer pixels, 255 otherwise (8-bit)."""
    return 65535.0 if np.dtype(dtype) == np.uint16 else 255.0


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """8/16-bit pixels -> float32 in [0, 1] (floats are passed through as float32)."""
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels.astype(np.float32) / np.float32(full_scale(pixels.dtype))
    if np.issubdtype(pixels.dtype, np.floating):
        return pixels.astype(np.float32)
    raise TypeError(f"unsupported pixel type {pixels.dtype}; use 8/16-bit integers or floats in [0, 1]")


def from_unit(values: np.ndarray, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Floats in [0, 1] -> ``dtype`` (uint8 or uint16) pixels, rounded."""
    return (np.clip(values, 0, 1) * full_scale(dtype) + 0.5).astype(dtype)


def unit_to_uint8(values: Values) -> Values:
    """Floats in [0, 1] -> uint8, rounded; a tensor stays a tensor (on its device), an array an array."""
    if isinstance(values, torch.Tensor):
        return (values.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return from_unit(values, np.uint8)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Any 8/16-bit or [0, 1] float pixels -> uint8 (16-bit by the exact 65535 -> 255 scale, rounded)."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    return from_unit(to_unit(pixels), np.uint8)
