"""Writing images: atomic, usual permissions, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from visionzoo.data.images import read_image, write_image_atomic
from visionzoo.errors import DataError


def test_written_files_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        write_image_atomic(tmp_path / "a.png", np.full((4, 5, 3), 7, np.uint8))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o644
    assert read_image(tmp_path / "a.png").pixels.shape == (4, 5, 3)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(DataError, match="could not write"):
        write_image_atomic(tmp_path / "a.unknownsuffix", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
