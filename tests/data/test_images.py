"""Writing images: atomic, usual permissions, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from visionzoo.data.images import read_image, write_image
from visionzoo.errors import DataError


def test_written_files_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", np.full((4, 5, 3), 7, np.uint8))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o644
    assert read_image(tmp_path / "a.png").pixels.shape == (4, 5, 3)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match="could not write"):
        write_image(tmp_path / "a.unknownsuffix", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_pixels_pillow_shows(orientation, tmp_path):
    """Every EXIF orientation by pixel content: the upright pixels equal Pillow's ``exif_transpose`` of the file
    (an asymmetric 3 x 4 pattern, so any wrong flip or rotation changes them)."""
    from PIL import Image, ImageOps

    stored = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert expected.shape[:2] == ((3, 4) if orientation <= 4 else (4, 3))
    np.testing.assert_array_equal(read_image(path).pixels, expected)
