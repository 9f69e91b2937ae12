"""Paired image/mask transforms with OpenCV (run inside DataLoader workers).

Images are ``(H, W, 3)`` uint8 RGB, masks ``(H, W)`` uint8; every geometric transform moves both alike.
Randomness comes from the ``numpy.random.Generator`` passed in, so a seeded generator replays a sample exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from visionzoo.constants import IMAGENET_MEAN, IMAGENET_STD
from visionzoo.pixels import unit_to_uint8
from visionzoo.preprocessing import RESAMPLE_FILTERS


_PIL_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
}


def resize_image(image: np.ndarray, size: tuple[int, int], resample: str = "area") -> np.ndarray:
    """Resize ``(H, W, C)`` uint8 to ``size`` = (height, width).

    ``resample="area"`` (the zoo's models): OpenCV area averaging when shrinking both sides, bilinear otherwise.
    ``"lanczos"`` / ``"bicubic"`` / ``"bilinear"``: Pillow's filters (antialiased when shrinking), what BEN's
    (Lanczos), BEVDet-family (bicubic) and MVANet's (bilinear) published weights were run with.
    The one image resize of evaluation and prediction, so both see the network input alike.
    """
    height, width = size
    if resample in _PIL_FILTERS:
        return np.array(Image.fromarray(image).resize((width, height), resample=_PIL_FILTERS[resample]))
    if resample != "area":
        raise ValueError(f"unknown resample filter {resample!r}; choose from {', '.join(RESAMPLE_FILTERS)}")
    shrink = image.shape[0] > height and image.shape[1] > width
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_pair(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], resample: str = "area"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resize_image` for the image, bilinear for the mask."""
    mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return resize_image(image, size, resample), mask


def random_scale_crop(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], scale: Sequence[float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size`` x a random factor in ``scale``, then take a random ``size`` window (zero-padding
    with background when the scaled image is smaller)."""
    factor = float(rng.uniform(*scale))
    height, width = size
    scaled = (max(1, round(height * factor)), max(1, round(width * factor)))
    image, mask = resize_pair(image, mask, scaled)
    pad_h, pad_w = max(0, height - scaled[0]), max(0, width - scaled[1])
    if pad_h or pad_w:
        top, left = int(rng.integers(0, pad_h + 1)), int(rng.integers(0, pad_w + 1))
        border = (top, pad_h - top, left, pad_w - left)
        image = cv2.copyMakeBorder(image, *border, cv2.BORDER_REFLECT_101)
        mask = cv2.copyMakeBorder(mask, *border, cv2.BORDER_CONSTANT, value=0)
    y = int(rng.integers(0, image.shape[0] - height + 1))
    x = int(rng.integers(0, image.shape[1] - width + 1))
    return image[y : y + height, x : x + width], mask[y : y + height, x : x + width]


def rotate_pair(
    image: np.ndarray, mask: np.ndarray, degrees: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate both about the centre by ``degrees`` (counter-clockwise), reflecting image borders."""
    height, width = mask.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = cv2.warpAffine(mask, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    return image, mask


def colour_jitter(
    image: np.ndarray, brightness: float, contrast: float, saturation: float, rng: np.random.Generator
) -> np.ndarray:
    """Random brightness/contrast/saturation factors in ``1 +- value``."""
    out = image.astype(np.float32)
    if brightness:
        out *= rng.uniform(1 - brightness, 1 + brightness)
    if contrast:
        mean = out.mean()
        out = (out - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    if saturation:
        gray = out.mean(axis=2, keepdims=True)
        out = (out - gray) * rng.uniform(1 - saturation, 1 + saturation) + gray
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass
class PairedAugment:
    """Training augmentation for image/mask pairs; all settings come from the data config.

    Output is ``size`` = (height, width) after a random scale-crop, flips, a small rotation and colour jitter.
    """

    size: tuple[int, int]
    scale: tuple[float, float] = (0.75, 1.25)
    hflip: float = 0.5
    vflip: float = 0.0
    rotate_degrees: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image, mask = random_scale_crop(image, mask, tuple(self.size), self.scale, rng)
        if rng.random() < self.hflip:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if rng.random() < self.vflip:
            image, mask = image[::-1], mask[::-1]
        if self.rotate_degrees:
            image, mask = rotate_pair(
                np.ascontiguousarray(image), np.ascontiguousarray(mask),
                float(rng.uniform(-self.rotate_degrees, self.rotate_degrees)),
            )
        image = colour_jitter(image, self.brightness, self.contrast, self.saturation, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def image_to_tensor(
    image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> normalised ``(3, H, W)`` float32."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (tensor - mean_t) / std_t


def tensor_to_image(
    tensor: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Inverse of :func:`image_to_tensor`: normalised ``(3, H, W)`` -> ``(H, W, 3)`` uint8 RGB."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=tensor.device)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32, device=tensor.device)[:, None, None]
    rgb = (tensor.float() * std_t + mean_t).clamp(0, 1).permute(1, 2, 0)
    return unit_to_uint8(rgb).cpu().numpy()


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """``(H, W)`` uint8 -> ``(1, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(mask)).float().div_(255)[None]
