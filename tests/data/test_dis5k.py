"""DIS5K reader, dataset, augmentation and the synthetic generator."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionzoo.data.dis5k import DISDataset, collate_dis, dis5k_pairs, dis5k_root
from visionzoo.data.synthetic_dis import generate_synthetic_dis, synthetic_dis_sample
from visionzoo.data.transforms import PairedAugment
from visionzoo.errors import DataError

COUNTS = {"DIS-TR": 3, "DIS-VD": 2}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return generate_synthetic_dis(tmp_path_factory.mktemp("syn"), counts=COUNTS, seed=3)


def _split(tmp_path, images: dict[str, tuple[int, int]], masks: dict[str, tuple[int, int]]):
    """Write a DIS5K/DIS-VD split with the given stem -> (height, width) images and masks."""
    for folder, files, suffix in (("im", images, ".jpg"), ("gt", masks, ".png")):
        (tmp_path / "DIS5K" / "DIS-VD" / folder).mkdir(parents=True, exist_ok=True)
        for stem, (h, w) in files.items():
            cv2.imwrite(str(tmp_path / "DIS5K" / "DIS-VD" / folder / f"{stem}{suffix}"), np.zeros((h, w, 3), np.uint8))
    return tmp_path


def test_synthetic_layout_and_determinism(synthetic, tmp_path):
    for split, count in COUNTS.items():
        assert len(list((synthetic / "DIS5K" / split / "im").glob("*.jpg"))) == count
        assert len(list((synthetic / "DIS5K" / split / "gt").glob("*.png"))) == count
    image, mask = synthetic_dis_sample(3, 0, 1)
    again_image, again_mask = synthetic_dis_sample(3, 0, 1)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    assert not np.array_equal(mask, synthetic_dis_sample(4, 0, 1)[1])
    assert set(np.unique(mask)) == {0, 255}
    assert 0.03 < (mask > 0).mean() < 0.6
    # Same settings -> the same folder, reused; a second root gets identical files.
    assert generate_synthetic_dis(synthetic.parent, counts=COUNTS, seed=3) == synthetic
    other = generate_synthetic_dis(tmp_path, counts=COUNTS, seed=3)
    name = "DIS5K/DIS-VD/gt/DIS-VD_0001.png"
    assert (other / name).read_bytes() == (synthetic / name).read_bytes()


def test_synthetic_has_thin_structures():
    # Wires 1-3 px wide: an opening with a 5x5 kernel removes a visible share of the foreground.
    masks = [synthetic_dis_sample(0, 0, i)[1] for i in range(6)]
    opened = [cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) for m in masks]
    thin_share = np.mean([((m > 0) & (o == 0)).sum() / (m > 0).sum() for m, o in zip(masks, opened)])
    assert thin_share > 0.03


def test_pairs_and_dataset_items(synthetic):
    pairs = dis5k_pairs(synthetic, "DIS-TR")
    assert [p.name for p in pairs] == ["DIS-TR_0000", "DIS-TR_0001", "DIS-TR_0002"]
    dataset = DISDataset(pairs, (64, 96))
    item = dataset[0]
    gt = cv2.imread(str(pairs[0].mask), cv2.IMREAD_GRAYSCALE)
    assert item["image"].shape == (3, 64, 96) and item["mask"].shape == (1, 64, 96)
    assert item["gt"].shape == gt.shape and np.array_equal(item["gt"], gt)  # metrics at the original resolution
    batch = collate_dis([dataset[0], dataset[1]])
    assert batch["image"].shape == (2, 3, 64, 96) and len(batch["gt"]) == 2 and batch["name"][1] == "DIS-TR_0001"
    train = DISDataset(pairs, (64, 64), augment=PairedAugment(size=(64, 64)))
    item = train[2]
    assert set(item) == {"image", "mask"} and item["mask"].shape == (1, 64, 64)


def test_root_may_be_the_parent_of_dis5k(synthetic):
    assert dis5k_root(synthetic) == synthetic / "DIS5K"
    assert dis5k_root(synthetic / "DIS5K") == synthetic / "DIS5K"


def test_missing_root_and_folders(tmp_path):
    with pytest.raises(DataError, match=r"DIS5K root .*nowhere does not exist; set data.root"):
        dis5k_pairs(tmp_path / "nowhere", "DIS-VD")
    (tmp_path / "DIS5K" / "DIS-VD" / "im").mkdir(parents=True)
    with pytest.raises(DataError, match=r"DIS-VD/gt is missing"):
        dis5k_pairs(tmp_path, "DIS-VD")
    (tmp_path / "DIS5K" / "DIS-VD" / "gt").mkdir()
    with pytest.raises(DataError, match="has no image/mask pairs"):
        dis5k_pairs(tmp_path, "DIS-VD")


def test_unpaired_and_mismatched_files_are_listed_in_one_error(tmp_path):
    root = _split(tmp_path, {"a": (20, 30), "b": (20, 30), "c": (20, 30)}, {"a": (20, 30), "b": (30, 20), "d": (5, 5)})
    with pytest.raises(DataError) as caught:
        dis5k_pairs(root, "DIS-VD")
    message = str(caught.value)
    assert "\n" not in message
    assert "1 images without a mask (c.jpg)" in message
    assert "1 masks without an image (d.png)" in message
    assert "1 image/mask size mismatches (b 30x20 vs 20x30)" in message
    assert "data.on_mismatch=skip" in message


def test_skip_mode_reports_and_keeps_the_rest(tmp_path, caplog):
    root = _split(tmp_path, {"a": (20, 30), "b": (20, 30)}, {"a": (20, 30), "b": (30, 20)})
    pairs = dis5k_pairs(root, "DIS-VD", on_mismatch="skip")
    assert [p.name for p in pairs] == ["a"]
    assert "size mismatches (b 30x20 vs 20x30)" in caplog.text


def test_corrupt_files_are_reported(tmp_path):
    root = _split(tmp_path, {"a": (20, 30), "b": (20, 30)}, {"a": (20, 30), "b": (20, 30)})
    (root / "DIS5K" / "DIS-VD" / "im" / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"1 unreadable files \(b.jpg\)"):
        dis5k_pairs(root, "DIS-VD")


def test_augmentation_is_paired_and_seeded():
    image, mask = synthetic_dis_sample(0, 0, 0)
    augment = PairedAugment(size=(96, 96), rotate_degrees=0, brightness=0, contrast=0, saturation=0, hflip=1.0)
    out_a = augment(image, mask, np.random.default_rng(5))
    out_b = augment(image, mask, np.random.default_rng(5))
    assert np.array_equal(out_a[0], out_b[0]) and np.array_equal(out_a[1], out_b[1])
    assert out_a[0].shape == (96, 96, 3) and out_a[1].shape == (96, 96)
    # Geometry moves image and mask together: the foreground colour stays under the mask.
    out_image, out_mask = out_a
    fg = out_image[out_mask > 200].astype(float).mean(axis=0)
    fg_reference = image[mask > 200].astype(float).mean(axis=0)
    bg_reference = image[mask == 0].astype(float).mean(axis=0)
    assert np.abs(fg - fg_reference).sum() < np.abs(fg - bg_reference).sum()


def test_image_tensor_round_trip():
    from visionzoo.data.transforms import image_to_tensor, tensor_to_image

    image, _ = synthetic_dis_sample(0, 0, 2)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, *image.shape[:2])
    assert abs(float(tensor.mean())) < 2.0  # normalised, not 0..255
    assert np.array_equal(tensor_to_image(tensor), image)


@pytest.mark.parametrize("resample, pillow", [("lanczos", "LANCZOS"), ("bilinear", "BILINEAR"), ("bicubic", "BICUBIC")])
def test_pillow_filters_resize_as_the_published_pipelines_do(resample, pillow):
    """BEN's inference() (Lanczos), MVANet's predict.py (bilinear) and BEVDet (bicubic) resize with Pillow."""
    from PIL import Image

    from visionzoo.data.transforms import resize_image

    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).resize((64, 48), getattr(Image.Resampling, pillow)))
    assert np.array_equal(resize_image(image, (48, 64), resample), expected)
