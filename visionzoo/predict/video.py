"""Cut-outs of videos: frames streamed through a BEN model in batches, three videos written, the audio kept.

For ``clip.mp4`` the cut-out predictor writes:

* ``clip_mask.mp4``: the alpha as a gray H.264 video;
* ``clip_cutout.webm``: the cut-out with its alpha channel (VP9 ``yuva420p`` in WebM: transparent in browsers
  and video editors), with the input's audio (Opus);
* ``clip_greenscreen.mp4``: the cut-out over a solid colour (green by default), H.264 with the audio (AAC), for
  players and editors that ignore alpha.

Frames are decoded, segmented and encoded as a stream (memory holds one batch of frames); every frame keeps its
timestamp (variable frame rates stay as they were) and a rotation recorded by a phone is applied, so outputs are
upright. H.264 needs even sizes: an odd last row or column is repeated there. The three files are written under
temporary names and renamed together when the whole video is done. Decoding and encoding use PyAV (FFmpeg's
libraries; no ``ffmpeg`` program is called).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np

from visionzoo.errors import DataError
from visionzoo.files import atomic_outputs
from visionzoo.predict.foreground import estimate_foreground

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
#: Encoder settings: near-lossless masks, good-quality cut-outs at a moderate encoding speed.
_H264_OPTIONS = {"crf": "16", "preset": "veryfast"}
_VP9_OPTIONS = {"auto-alt-ref": "0", "crf": "28", "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1"}


@dataclass(frozen=True)
class VideoTargets:
    """The three files written for one input video."""

    mask: Path
    cutout: Path
    greenscreen: Path

    @classmethod
    def beside(cls, folder: Path, name: str) -> "VideoTargets":
        return cls(folder / f"{name}_mask.mp4", folder / f"{name}_cutout.webm", folder / f"{name}_greenscreen.mp4")

    def all(self) -> tuple[Path, Path, Path]:
        return self.mask, self.cutout, self.greenscreen


class _EncodedVideo:
    """One output container: a video stream and, when the input has sound, an audio stream."""

    def __init__(self, path: Path, container_format: str, video_codec: str, pix_fmt: str, options: dict[str, str],
                 size: tuple[int, int], rate, audio_codec: str, audio: av.audio.stream.AudioStream | None) -> None:
        self.container = av.open(str(path), "w", format=container_format)
        self.pix_fmt, self.even = pix_fmt, pix_fmt == "yuv420p"
        height, width = size
        self.video = self.container.add_stream(video_codec, rate=rate)
        self.video.width, self.video.height = (width + width % 2, height + height % 2) if self.even else (width, height)
        self.video.pix_fmt = pix_fmt
        self.video.codec_context.options = dict(options)
        self.audio = self.resampler = None
        if audio is not None:
            rate = 48000 if audio_codec == "libopus" else audio.rate
            self.audio = self.container.add_stream(audio_codec, rate=rate)
            self.audio.layout = "stereo" if audio.layout.nb_channels > 1 else "mono"
            self.resampler = av.AudioResampler(format=self.audio.codec_context.format, layout=self.audio.layout,
                                               rate=rate)

    def write_frame(self, pixels: np.ndarray, source: av.VideoFrame) -> None:
        """``pixels`` ``(H, W, 3 or 4)`` uint8 RGB(A), timed as the input frame ``source``."""
        if self.even and (pixels.shape[0] % 2 or pixels.shape[1] % 2):
            pixels = np.pad(pixels, ((0, pixels.shape[0] % 2), (0, pixels.shape[1] % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgba" if pixels.shape[2] == 4 else "rgb24")
        frame.pts, frame.time_base = source.pts, source.time_base
        for packet in self.video.encode(frame.reformat(format=self.pix_fmt)):
            self.container.mux(packet)

    def write_audio(self, frame: av.AudioFrame) -> None:
        for resampled in self.resampler.resample(frame):
            for packet in self.audio.encode(resampled):
                self.container.mux(packet)

    def close(self) -> None:
        for packet in self.video.encode():
            self.container.mux(packet)
        if self.audio is not None:
            for resampled in self.resampler.resample(None):
                for packet in self.audio.encode(resampled):
                    self.container.mux(packet)
            for packet in self.audio.encode():
                self.container.mux(packet)
        self.container.close()


def upright(frame: av.VideoFrame) -> np.ndarray:
    """The frame as ``(H, W, 3)`` uint8 RGB, turned by the rotation its stream records (phones)."""
    pixels = frame.to_ndarray(format="rgb24")
    turns = round(getattr(frame, "rotation", 0) / 90) % 4  # counter-clockwise quarter turns that display it
    return np.ascontiguousarray(np.rot90(pixels, k=turns)) if turns else pixels


def frame_count(path: Path) -> int | None:
    """The number of video frames the container declares (``None`` when it does not say or cannot be read)."""
    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames or None if container.streams.video else None
    except av.FFmpegError:
        return None


def cut_out_video(
    path: Path,
    targets: VideoTargets,
    predict_alpha: Callable[[list[np.ndarray]], list[np.ndarray]],
    to_mask: Callable[[np.ndarray], np.ndarray],
    batch_size: int = 4,
    refine_foreground: bool = False,
    background: Sequence[int] = (0, 255, 0),
    advance: Callable[[int], object] = lambda frames: None,
) -> int:
    """Segment every frame of the video at ``path`` and write ``targets``; returns the number of frames.

    ``predict_alpha`` maps a batch of ``(H, W, 3)`` uint8 RGB frames to float alphas at their size; ``to_mask``
    turns one alpha into the uint8 mask (e.g. with the per-frame min-max stretch). ``advance(n)`` is called after
    each batch. A file that cannot be opened or decoded raises :class:`DataError` and leaves no output behind.
    """
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise DataError(f"cannot open video {path} ({err}); is it a video file?") from err
    with container:
        if not container.streams.video:
            raise DataError(f"{path} has no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        writer = _VideoCutoutWriter(video, audio, to_mask, refine_foreground, background)
        with atomic_outputs(*targets.all()) as temporaries:
            try:
                frames = _segment_stream(container, video, audio, writer, temporaries, predict_alpha, batch_size,
                                         advance)
            except av.FFmpegError as err:
                writer.abandon()
                raise DataError(f"cannot decode video {path} ({err}); the file may be truncated or corrupt") from err
            except BaseException:
                writer.abandon()
                raise
            if frames == 0:
                writer.abandon()
                raise DataError(f"{path} holds no decodable video frames")
            writer.close()
    return frames


def _segment_stream(container, video, audio, writer: "_VideoCutoutWriter", temporaries: list[Path],
                    predict_alpha: Callable[[list[np.ndarray]], list[np.ndarray]], batch_size: int,
                    advance: Callable[[int], object]) -> int:
    """Demux in file order: sound goes straight to the writer, pictures in batches through the model."""
    batch: list[tuple[np.ndarray, av.VideoFrame]] = []
    frames = 0
    for packet in container.demux(*([video] + ([audio] if audio is not None else []))):
        for frame in packet.decode():
            if isinstance(frame, av.AudioFrame):
                writer.audio(frame)
                continue
            batch.append((upright(frame), frame))
            if len(batch) == batch_size:
                frames += writer.frames(batch, predict_alpha([rgb for rgb, _ in batch]), temporaries)
                advance(len(batch))
                batch = []
    if batch:
        frames += writer.frames(batch, predict_alpha([rgb for rgb, _ in batch]), temporaries)
        advance(len(batch))
    return frames


class _VideoCutoutWriter:
    """The three outputs of one video, opened at the first frame (its size, after rotation, sets theirs)."""

    def __init__(self, video, audio, to_mask, refine_foreground: bool, background: Sequence[int]) -> None:
        self.source, self.source_audio = video, audio
        self.to_mask, self.refine_foreground = to_mask, refine_foreground
        self.background = np.asarray(background, dtype=np.float32)
        self.outputs: list[_EncodedVideo] = []
        self.early_audio: list[av.AudioFrame] = []  # sound decoded before the first picture

    def _open(self, size: tuple[int, int], temporaries: list[Path]) -> None:
        rate = self.source.average_rate or 30
        mask, cutout, green = temporaries
        self.outputs = [
            _EncodedVideo(mask, "mp4", "libx264", "yuv420p", _H264_OPTIONS, size, rate, "aac", None),
            _EncodedVideo(cutout, "webm", "libvpx-vp9", "yuva420p", _VP9_OPTIONS, size, rate, "libopus",
                          self.source_audio),
            _EncodedVideo(green, "mp4", "libx264", "yuv420p", _H264_OPTIONS, size, rate, "aac", self.source_audio),
        ]
        for frame in self.early_audio:
            self.audio(frame)
        self.early_audio = []

    def audio(self, frame: av.AudioFrame) -> None:
        if not self.outputs:
            self.early_audio.append(frame)
            return
        for output in self.outputs[1:]:
            output.write_audio(frame)

    def frames(self, batch: list[tuple[np.ndarray, av.VideoFrame]], alphas: list[np.ndarray],
               temporaries: list[Path]) -> int:
        if not self.outputs:
            self._open(batch[0][0].shape[:2], temporaries)
        mask_out, cutout_out, green_out = self.outputs
        for (rgb, source), alpha in zip(batch, alphas):
            mask = self.to_mask(alpha)
            colours = rgb
            if self.refine_foreground:
                colours = (estimate_foreground(rgb / 255.0, mask / 255.0) * 255 + 0.5).astype(np.uint8)
            weight = mask[..., None].astype(np.float32) / 255.0
            green = (colours * weight + self.background * (1 - weight) + 0.5).astype(np.uint8)
            mask_out.write_frame(np.repeat(mask[..., None], 3, axis=2), source)
            cutout_out.write_frame(np.dstack([colours, mask]), source)
            green_out.write_frame(green, source)
        return len(batch)

    def close(self) -> None:
        for output in self.outputs:
            output.close()

    def abandon(self) -> None:
        """Close what was opened without caring about the (discarded) result."""
        for output in self.outputs:
            try:
                output.container.close()
            except av.FFmpegError:
                pass
