"""Denoising benchmarks: clean images (scikit-image's shipped set or a folder) with seeded synthetic noise.

Conventions (../shared/reference/dip.md): clean images in [0, 1]; Gaussian noise ``sigma`` on the 0..255 scale or
Poisson noise at ``peak`` photons for white; the noisy image is clipped to [0, 1]. Each image's noise comes from
its own generator seeded by ``seed`` and the image's position in the list, so ``limit`` (the first images) keeps
their noisy images, while another ``images`` list or order draws new noise for every moved image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from visionzoo.data.images import IMAGE_SUFFIXES, read_image
from visionzoo.errors import DataError

#: scikit-image's shipped images used to calibrate and evaluate the DIP architecture estimator.
SKIMAGE_SET = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "brick", "grass", "gravel")
NOISE_KINDS = ("gaussian", "poisson")


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(H, W[, C])`` so the short side is ``size`` (area filter) and centre-crop to ``size x size``."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    resized = cv2.resize(image, (max(size, round(width * scale)), max(size, round(height * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if resized.ndim < image.ndim:  # OpenCV drops a single channel axis
        resized = resized[..., None]
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[top : top + size, left : left + size]


def skimage_image(name: str, size: int | None = None) -> np.ndarray:
    """A scikit-image sample as ``(H, W, C)`` uint8, C = 1 (gray) or 3 (RGB), optionally :func:`fit_square`."""
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None or name.startswith("_"):
        raise DataError(f"unknown scikit-image sample {name!r}; pick from {', '.join(SKIMAGE_SET)} or skimage.data")
    image = np.asarray(loader())
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if size is not None:
        image = fit_square(image, size)
    return image[..., None] if image.ndim == 2 else image


def folder_images(root: str | Path, size: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Every image file in ``root`` (sorted) as ``(name, (H, W, C) uint8)``; gray files stay one channel."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"clean image folder {root} does not exist; set data.root to a folder of images")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}; set data.root to a folder of images")
    images = []
    for path in files:
        loaded = read_image(path)
        pixels = loaded.rgb8()[..., :1] if loaded.grayscale else loaded.rgb8()
        images.append((path.stem, fit_square(pixels, size) if size else pixels))
    return images


def add_noise(clean: np.ndarray, kind: str = "gaussian", sigma: float = 25.0, peak: float = 30.0,
              seed: int = 0) -> np.ndarray:
    """Noisy version of ``clean`` (float in [0, 1], any shape), clipped to [0, 1].

    ``kind="gaussian"``: additive N(0, (sigma/255)^2); ``kind="poisson"``: Poisson(clean * peak) / peak.
    """
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        noisy = clean + rng.standard_normal(clean.shape) * (sigma / 255.0)
    elif kind == "poisson":
        noisy = rng.poisson(clean * peak) / peak
    else:
        raise DataError(f"unknown noise kind {kind!r}; pick one of {', '.join(NOISE_KINDS)}")
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


class DenoiseDataset(Dataset):
    """Clean images with seeded noise; items are dicts of ``name``, ``clean`` and ``noisy`` ``(C, H, W)`` tensors."""

    def __init__(self, images: Sequence[tuple[str, np.ndarray]], kind: str = "gaussian", sigma: float = 25.0,
                 peak: float = 30.0, seed: int = 0) -> None:
        if kind not in NOISE_KINDS:
            raise DataError(f"unknown noise kind {kind!r}; pick one of {', '.join(NOISE_KINDS)}")
        self.images, self.kind, self.sigma, self.peak, self.seed = list(images), kind, sigma, peak, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, pixels = self.images[index]
        clean = pixels.astype(np.float32) / 255.0
        noisy = add_noise(clean, self.kind, self.sigma, self.peak, seed=self.seed * 100_003 + index)
        return {
            "name": name,
            "clean": torch.from_numpy(clean).permute(2, 0, 1),
            "noisy": torch.from_numpy(noisy).permute(2, 0, 1),
        }


def collate_images(items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Images may differ in size and channels: a batch holds lists of names and ``(1, C, H, W)`` tensors."""
    return {
        "name": [item["name"] for item in items],
        "clean": [item["clean"][None] for item in items],
        "noisy": [item["noisy"][None] for item in items],
    }


class DenoiseDataModule(L.LightningDataModule):
    """Test images for DIP evaluation: ``root`` (a folder of clean images) or scikit-image ``images``.

    Args:
        root: folder of clean images; ``None`` uses ``images`` from scikit-image.
        images: scikit-image sample names (default :data:`SKIMAGE_SET`).
        size: resize the short side to ``size`` and centre-crop square; ``None`` keeps full size.
        noise: ``"gaussian"`` or ``"poisson"``; sigma: Gaussian std on 0..255; peak: Poisson photons for white.
        seed: noise seed; limit: keep only the first ``limit`` images.
        batch_size: images per test step; the DIP task fits same-size images that get the same architecture
            together (faster for small images, see :mod:`visionzoo.dip.fit`).
    """

    def __init__(self, root: str | None = None, images: Sequence[str] = SKIMAGE_SET, size: int | None = 96,
                 noise: str = "gaussian", sigma: float = 25.0, peak: float = 30.0, seed: int = 0,
                 limit: int | None = None, batch_size: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        self.root, self.names, self.size = root, list(images), size
        self.noise, self.sigma, self.peak, self.seed, self.limit = noise, sigma, peak, seed, limit
        self.batch_size, self.num_workers = batch_size, num_workers
        self.test_set: DenoiseDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.root is not None:
            images = folder_images(self.root, self.size)
        else:
            images = [(name, skimage_image(name, self.size)) for name in self.names]
        self.test_set = DenoiseDataset(images[: self.limit], self.noise, self.sigma, self.peak, self.seed)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_images)
