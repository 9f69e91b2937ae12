"""BEN cut-outs on users' files: grayscale, RGBA, 16-bit, EXIF-rotated, corrupt; atomic, resumable output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import visionzoo
from visionzoo.data.images import read_image
from visionzoo.errors import DataError
from visionzoo.predict.cutout import CutoutPredictor, alpha_to_uint8


class _LeftHalf(torch.nn.Module):
    """A stand-in BEN whose alpha is 1 on the left half of its input, 0 on the right."""

    def forward(self, x):
        alpha = torch.zeros(x.shape[0], 1, *x.shape[-2:])
        alpha[..., : x.shape[-1] // 2] = 1
        return {"alpha": alpha, "base": alpha, "confidence": torch.ones_like(alpha)}


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "colour.jpg"), colour)
    cv2.imwrite(str(folder / "gray.png"), colour[..., 0])
    rgba = np.dstack([colour, np.full((40, 60), 128, np.uint8)])
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    cv2.imwrite(str(folder / "deep.png"), (colour.astype(np.uint16) * 257))
    # EXIF orientation 6: stored 60 wide x 40 high, displayed rotated 90 degrees clockwise (40 x 60).
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(colour).save(folder / "rotated.jpg", exif=exif)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_exif_rotation_is_applied(photos):
    """The pixels are turned 90 degrees clockwise (as Pillow's exif_transpose shows the file), not only reshaped:
    the opposite rotation is far off (every orientation exactly: tests/data/test_images.py)."""
    from PIL import ImageOps

    image = read_image(photos / "rotated.jpg").pixels.astype(np.float64)
    with Image.open(photos / "rotated.jpg") as opened:
        stored = np.asarray(opened.convert("RGB")).astype(np.float64)
        shown = np.asarray(ImageOps.exif_transpose(opened).convert("RGB")).astype(np.float64)
    assert image.shape == shown.shape == (60, 40, 3)
    assert np.abs(image - shown).mean() < 2  # two JPEG decoders
    assert np.abs(image - np.rot90(stored, 1)).mean() > 40  # counter-clockwise would be wrong


def test_predicts_every_kind_of_input_and_reports_the_broken_one(photos, tmp_path):
    out = tmp_path / "out"
    report = CutoutPredictor(_LeftHalf(), str(photos), str(out), input_size=32, device="cpu").run()
    assert sorted(p.name for p in report.written) == ["colour.jpg", "deep.png", "gray.png", "rgba.png", "rotated.jpg"]
    assert list(report.failed) == [photos / "broken.jpg"] and "cannot read image" in report.failed[photos / "broken.jpg"]
    assert [p.name for p in report.ignored] == ["notes.txt"]

    mask = cv2.imread(str(out / "colour_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 60) and mask.dtype == np.uint8
    assert mask[:, :28].min() == 255 and mask[:, 32:].max() == 0  # left half kept at the original resolution
    cutout = cv2.imread(str(out / "colour_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert cutout.shape == (40, 60, 4) and np.array_equal(cutout[..., 3], mask)

    assert cv2.imread(str(out / "rotated_mask.png"), cv2.IMREAD_UNCHANGED).shape == (60, 40)  # upright
    deep = cv2.imread(str(out / "deep_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (40, 60, 4) and deep[0, 0, 3] == 65535
    rgba = cv2.imread(str(out / "rgba_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert rgba[0, 0, 3] == 128 and rgba[0, -1, 3] == 0  # the file's own alpha is multiplied in
    gray = cv2.imread(str(out / "gray_cutout.png"), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (40, 60, 4) and np.array_equal(gray[..., 0], gray[..., 1])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_rerun_skips_finished_outputs_unless_overwrite(photos, tmp_path):
    out = tmp_path / "out"
    CutoutPredictor(_LeftHalf(), str(photos / "colour.jpg"), str(out), input_size=32, device="cpu").run()
    before = (out / "colour_mask.png").stat().st_mtime_ns
    again = CutoutPredictor(_LeftHalf(), str(photos / "*.jpg"), str(out), input_size=32, device="cpu").run()
    assert [p.name for p in again.finished] == ["colour.jpg"]
    assert (out / "colour_mask.png").stat().st_mtime_ns == before
    forced = CutoutPredictor(_LeftHalf(), str(photos / "colour.jpg"), str(out), input_size=32, overwrite=True,
                             device="cpu").run()
    assert [p.name for p in forced.written] == ["colour.jpg"]


def test_input_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match=r"input .*missing does not exist"):
        CutoutPredictor(_LeftHalf(), str(tmp_path / "missing"), str(tmp_path / "out"), input_size=32).run()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image or video files"):
        CutoutPredictor(_LeftHalf(), str(tmp_path / "empty"), str(tmp_path / "out"), input_size=32).run()
    (tmp_path / "only_broken").mkdir()
    (tmp_path / "only_broken" / "x.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of the 1 inputs could be processed"):
        CutoutPredictor(_LeftHalf(), str(tmp_path / "only_broken"), str(tmp_path / "out"), input_size=32).run()


def test_alpha_post_processing():
    alpha = np.array([[0.25, 0.5], [0.75, 0.75]], np.float32)
    assert alpha_to_uint8(alpha, normalize=True).tolist() == [[0, 128], [255, 255]]
    assert alpha_to_uint8(alpha, normalize=False).tolist() == [[64, 128], [191, 191]]
    assert alpha_to_uint8(np.full((2, 2), 0.5), normalize=True).tolist() == [[128, 128], [128, 128]]


def test_real_ben_model_runs_on_a_folder(photos, tmp_path):
    net = visionzoo.create_model("ben_tiny")
    report = CutoutPredictor(net, str(photos), str(tmp_path / "out"), input_size=64, batch_size=2, device="cpu").run()
    assert len(report.written) == 5
