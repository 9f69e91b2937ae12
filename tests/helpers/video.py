"""Small generated video clips for tests (PyAV): a coloured square moving over a dark background."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def clip_frames(frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``frames`` RGB uint8 pictures of ``size`` = (height, width): an orange square moving right."""
    height, width = size
    side = max(4, height // 3)
    pictures = []
    for i in range(frames):
        picture = np.full((height, width, 3), 20, np.uint8)
        left = (i * width) // (2 * frames)
        picture[height // 3 : height // 3 + side, left : left + side] = (255, 120, 0)
        pictures.append(picture)
    return pictures


def write_clip(path: Path, frames: int = 12, size: tuple[int, int] = (48, 64), fps: int = 10,
               audio_seconds: float = 0.0, rotation: int = 0) -> Path:
    """An H.264 MP4 of :func:`clip_frames`, with a 440 Hz stereo AAC tone of ``audio_seconds`` (0: silent film)
    and a display rotation (degrees, counter-clockwise) recorded as a phone does."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio_seconds:
            sound = container.add_stream("aac", rate=44100)
            sound.layout = "stereo"
        for picture in clip_frames(frames, size):
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = int(44100 * audio_seconds)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(np.stack([tone[start : start + 1024]] * 2), format="fltp",
                                                   layout="stereo")
                chunk.sample_rate, chunk.pts = 44100, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path
