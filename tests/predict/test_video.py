"""Video cut-outs: three files, frames in order and on time, sound kept, upright, atomic, resumable."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers.video import clip_frames, write_clip
from visionzoo.errors import DataError
from visionzoo.predict.cutout import CutoutPredictor
from visionzoo.predict.video import VideoTargets


class OrangeSegmenter(nn.Module):
    """Foreground = pixels much redder than blue (the clip's orange square), as a BEN-style output dict."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha = ((x[:, 0:1] - x[:, 2:3]) > 2.0).float()  # normalised R - B: about 5.4 on orange, 0 on gray
        return {"alpha": alpha}


def decode(path: Path, codec: str | None = None) -> tuple[list[np.ndarray], av.container.InputContainer]:
    """All frames of a video as RGB(A) arrays (``codec`` forces a decoder: libvpx-vp9 reads VP9's alpha)."""
    container = av.open(str(path))
    stream = container.streams.video[0]
    if codec is None:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    else:
        decoder = av.CodecContext.create(codec, "r")
        frames = [f.to_ndarray(format="rgba") for p in container.demux(stream) for f in decoder.decode(p)]
    return frames, container


def cut_out(clip: Path, out: Path, **options) -> CutoutPredictor:
    predictor = CutoutPredictor(OrangeSegmenter(), str(clip), str(out), input_size=64, batch_size=5, **options)
    predictor.report = predictor.run()
    return predictor


def test_video_gives_mask_cutout_and_greenscreen_in_order_on_time_with_sound(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=12, size=(48, 64), fps=10, audio_seconds=1.2)
    cut_out(clip, tmp_path / "out")
    targets = VideoTargets.beside(tmp_path / "out", "clip")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in targets.all())

    masks, container = decode(targets.mask)
    with container:
        stream = container.streams.video[0]
        assert (len(masks), stream.average_rate, stream.width, stream.height) == (12, 10, 64, 48)
        assert not container.streams.audio  # the mask video is silent
    truth = [((f[..., 0].astype(int) - f[..., 2]) > 100) for f in clip_frames(12, (48, 64))]
    for mask, square in zip(masks, truth):  # batches of 5, 5, 2: every frame at its place
        assert mask[..., 0][square].mean() > 200 and mask[..., 0][~square].mean() < 40
    centres = [np.nonzero(mask[..., 0] > 128)[1].mean() for mask in masks]
    assert all(b > a for a, b in zip(centres, centres[1:]))  # the square moves right, frame after frame

    cutouts, container = decode(targets.cutout, codec="libvpx-vp9")
    with container:
        assert len(cutouts) == 12 and cutouts[0].shape == (48, 64, 4)
        assert container.streams.audio[0].codec_context.name == "opus"
        assert container.duration / 1e6 == pytest.approx(1.2, abs=0.1)
    for cutout, square in zip(cutouts, truth):
        assert cutout[..., 3][square].mean() > 200 and cutout[..., 3][~square].mean() < 40  # the alpha channel

    greens, container = decode(targets.greenscreen)
    with container:
        assert container.streams.audio[0].codec_context.name == "aac" and len(greens) == 12
    background = greens[6][~truth[6]].astype(int).mean(axis=0)
    assert np.abs(background - (0, 255, 0)).max() < 25  # composited over green
    assert np.abs(greens[6][truth[6]].astype(int).mean(axis=0) - (255, 120, 0)).max() < 30  # the object's colour


def test_phone_rotation_is_applied_and_outputs_are_upright(tmp_path):
    clip = write_clip(tmp_path / "phone.mp4", frames=4, size=(48, 64), rotation=90)  # stored 64 wide, shown 48
    cut_out(clip, tmp_path / "out")
    masks, container = decode(tmp_path / "out" / "phone_mask.mp4")
    container.close()
    assert masks[0].shape[:2] == (64, 48)
    with av.open(str(tmp_path / "out" / "phone_mask.mp4")) as written:
        assert next(written.decode(video=0)).rotation == 0  # no rotation left for players to apply again
    square = np.rot90((clip_frames(4, (48, 64))[0][..., 0].astype(int) - 20) > 100)  # turned counter-clockwise
    assert masks[0][..., 0][square].mean() > 200 and masks[0][..., 0][~square].mean() < 40


def test_odd_sizes_are_padded_for_h264_only(tmp_path):
    clip = tmp_path / "odd.webm"
    with av.open(str(clip), "w") as container:  # VP9 stores odd sizes; H.264 outputs need even ones
        stream = container.add_stream("libvpx-vp9", rate=10)
        stream.width, stream.height, stream.pix_fmt = 63, 47, "yuv420p"
        for picture in clip_frames(3, (47, 63)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut_out(clip, tmp_path / "out")
    masks, container = decode(tmp_path / "out" / "odd_mask.mp4")
    container.close()
    cutouts, container = decode(tmp_path / "out" / "odd_cutout.webm", codec="libvpx-vp9")
    container.close()
    assert masks[0].shape[:2] == (48, 64) and cutouts[0].shape[:2] == (47, 63)


def test_broken_video_is_reported_leaves_nothing_and_done_videos_are_skipped(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_clip(folder / "good.mp4", frames=3)
    whole = write_clip(tmp_path / "whole.mp4", frames=30, size=(96, 128)).read_bytes()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # truncated mid-file
    (folder / "junk.mov").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    report = cut_out(folder, out).report
    assert [p.name for p in report.written] == ["good.mp4"]
    assert set(p.name for p in report.failed) == {"cut.mp4", "junk.mov"}
    assert "cannot open video" in report.failed[folder / "junk.mov"]
    assert sorted(p.name for p in out.iterdir()) == ["good_cutout.webm", "good_greenscreen.mp4", "good_mask.mp4"]
    again = cut_out(folder / "good.mp4", out).report
    assert again.finished == [folder / "good.mp4"] and not again.written
    with pytest.raises(DataError, match="none of the 1 inputs could be processed"):
        cut_out(folder / "junk.mov", out)
