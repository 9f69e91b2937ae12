"""The photo folder of distillation: recursive listing, a stable held-out split, teacher targets as pairs."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionzoo.data.photos import HELD_OUT, PhotoDataModule, find_photos, split_photos
from visionzoo.errors import DataError


def _photo(path: Path, height: int = 40, width: int = 56, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))
    return path


def test_find_photos_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path):
    expected = [_photo(tmp_path / "a.jpg"), _photo(tmp_path / "trip/day 1/b.PNG"), _photo(tmp_path / "z.webp")]
    _photo(tmp_path / ".thumbnails/c.jpg")
    _photo(tmp_path / "trip/.d.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert find_photos(tmp_path) == expected


def test_find_photos_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match=f"data.root {tmp_path / 'none'} is not a folder"):
        find_photos(tmp_path / "none")
    (tmp_path / "empty/sub").mkdir(parents=True)
    with pytest.raises(DataError, match=f"data.root {tmp_path / 'empty'} holds no images"):
        find_photos(tmp_path / "empty")


def test_split_is_stable_when_photos_are_added(tmp_path):
    root = tmp_path
    photos = [root / f"p{i:03d}.jpg" for i in range(200)]
    train, held = split_photos(root, photos, 0.1, seed=0)
    assert sorted(train + held) == photos and not set(train) & set(held)
    assert 10 <= len(held) <= 30  # 10% of 200, drawn by hash
    more = photos + [root / f"new/q{i}.jpg" for i in range(50)]
    _, held_more = split_photos(root, more, 0.1, seed=0)
    assert set(held) == {p for p in held_more if p in set(photos)}  # no old photo changed side
    assert split_photos(root, photos, 0.1, seed=1)[1] != held  # the seed draws another split


def test_two_photos_give_one_per_split(tmp_path):
    photos = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    train, held = split_photos(tmp_path, photos, 0.01, seed=0)
    assert len(train) == 1 and len(held) == 1


def _module(root: Path, targets_dir: Path, **kwargs) -> PhotoDataModule:
    settings = dict(input_size=32, batch_size=2, eval_batch_size=2, num_workers=0, val_fraction=0.3)
    return PhotoDataModule(root=str(root), targets_dir=str(targets_dir), **{**settings, **kwargs})


def test_datamodule_pairs_photos_with_their_targets(tmp_path, caplog):
    root = tmp_path / "photos"
    photos = [_photo(root / f"album{i % 2}/p{i}.jpg", 40 + i, 56) for i in range(8)]
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    module = _module(root, tmp_path / "targets")
    with caplog.at_level(logging.WARNING):
        train, held = module.photos("train"), module.photos(HELD_OUT)
    assert "1 unreadable images left out" in caplog.text and str(root / "broken.jpg") in caplog.text
    assert sorted(train + held) == sorted(photos) and held and train
    assert module.target_path(root / "album1/p3.jpg") == tmp_path / "targets/album1/p3.png"
    assert module.photos_needing_targets() == train + held
    assert _module(root, tmp_path / "t", targets="online").photos_needing_targets() == held

    # targets for all but one held-out photo: a soft ramp at each photo's own size
    for photo in train + held[1:]:
        height = cv2.imread(str(photo)).shape[0]
        target = module.target_path(photo)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), np.tile(np.linspace(0, 255, 56).astype(np.uint8), (height, 1)))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        loader = module.test_dataloader()[0]
    assert "1 photos have no teacher mask" in caplog.text and str(held[0]) in caplog.text
    batch = next(iter(loader))
    assert batch["image"].shape[1:] == (3, 32, 32) and batch["mask"].shape[1:] == (1, 32, 32)
    assert batch["gt"][0].shape == cv2.imread(str(held[1])).shape[:2]  # the target at the photo's size
    assert batch["gt"][0][0, -1] == 255 and batch["gt"][0][0, 0] == 0
    train_batch = next(iter(module.train_dataloader()))
    assert train_batch["mask"].shape == (2, 1, 32, 32)
    assert 0.2 < float(train_batch["mask"].mean()) < 0.8  # the soft ramp, augmented with the photo
    online = next(iter(_module(root, tmp_path / "targets", targets="online").train_dataloader()))
    assert float(online["mask"].abs().sum()) == 0  # no cached target: the teacher fills it in per batch


def test_datamodule_settings_errors(tmp_path):
    with pytest.raises(DataError, match="data.root is not set"):
        PhotoDataModule(root=None, targets_dir="t")
    with pytest.raises(DataError, match="data.targets must be one of cached, online, not 'always'"):
        PhotoDataModule(root="r", targets_dir="t", targets="always")
    with pytest.raises(DataError, match="data.val_fraction must be between 0 and 1"):
        PhotoDataModule(root="r", targets_dir="t", val_fraction=1.0)
    _photo(tmp_path / "one/a.jpg")
    with pytest.raises(DataError, match="holds 1 readable images; distillation needs at least 2"):
        _module(tmp_path / "one", tmp_path / "t").photos("train")
