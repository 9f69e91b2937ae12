"""Denoising data: scikit-image samples, folders of clean images, seeded Gaussian/Poisson noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionzoo.data.denoise import DenoiseDataModule, DenoiseDataset, add_noise, fit_square, folder_images, skimage_image
from visionzoo.errors import DataError


def test_skimage_images_keep_their_colour_mode():
    assert skimage_image("camera", 64).shape == (64, 64, 1)
    assert skimage_image("astronaut").shape == (512, 512, 3)
    assert skimage_image("coffee", 48).shape == (48, 48, 3) and skimage_image("coffee").dtype == np.uint8
    with pytest.raises(DataError, match="unknown scikit-image sample 'cameraman'"):
        skimage_image("cameraman")


def test_fit_square_resizes_the_short_side_and_centre_crops():
    image = np.zeros((40, 80), np.uint8)
    image[:, 30:50] = 255  # a centred band stays centred
    out = fit_square(image, 20)
    assert out.shape == (20, 20)
    assert out[:, 5:15].min() == 255 and out[:, :4].max() == 0 and out[:, 16:].max() == 0


def test_gaussian_noise_has_the_requested_sigma_and_is_seeded():
    clean = np.full((256, 256, 1), 0.5, np.float32)
    noisy = add_noise(clean, "gaussian", sigma=25, seed=3)
    assert (noisy - clean).std() * 255 == pytest.approx(25, rel=0.02)
    assert np.array_equal(noisy, add_noise(clean, "gaussian", sigma=25, seed=3))
    assert not np.array_equal(noisy, add_noise(clean, "gaussian", sigma=25, seed=4))
    assert add_noise(np.ones((8, 8, 1), np.float32), sigma=50).max() == 1.0  # clipped


def test_poisson_noise_scales_with_the_peak():
    clean = np.full((200, 200, 1), 0.5, np.float32)
    noisy = add_noise(clean, "poisson", peak=30, seed=0)
    # Poisson(15) / 30: mean 0.5, std sqrt(15) / 30
    assert noisy.mean() == pytest.approx(0.5, abs=0.01)
    assert noisy.std() == pytest.approx(np.sqrt(15) / 30, rel=0.05)
    with pytest.raises(DataError, match="unknown noise kind 'speckle'"):
        add_noise(clean, "speckle")


def test_dataset_noise_does_not_depend_on_order(tmp_path):
    images = [("a", skimage_image("camera", 32)), ("b", skimage_image("coins", 32))]
    full, alone = DenoiseDataset(images, sigma=15, seed=1), DenoiseDataset(images[:1], sigma=15, seed=1)
    assert full[0]["noisy"].shape == (1, 32, 32)
    assert np.array_equal(full[0]["noisy"].numpy(), alone[0]["noisy"].numpy())
    assert not np.array_equal(full[1]["noisy"].numpy(), DenoiseDataset(images, sigma=15, seed=2)[1]["noisy"].numpy())


def test_folder_of_clean_images(tmp_path):
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((30, 40), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "colour.png"), np.full((30, 40, 3), 100, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    images = dict(folder_images(tmp_path, size=24))
    assert images["gray"].shape == (24, 24, 1) and images["colour"].shape == (24, 24, 3)
    module = DenoiseDataModule(root=str(tmp_path), size=None)
    module.setup("test")
    batch = next(iter(module.test_dataloader()))
    assert batch["name"] == ["colour"] and batch["clean"][0].shape == (1, 3, 30, 40)
    module = DenoiseDataModule(root=str(tmp_path), size=16, batch_size=2)
    module.setup("test")
    batch = next(iter(module.test_dataloader()))
    assert batch["name"] == ["colour", "gray"] and [t.shape for t in batch["noisy"]] == [(1, 3, 16, 16), (1, 1, 16, 16)]
    with pytest.raises(DataError, match="does not exist"):
        folder_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        folder_images(tmp_path / "empty")
