"""Reading and writing users' images: EXIF orientation, grayscale/RGBA/16-bit inputs, atomic writes."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from visionzoo.errors import DataError
from visionzoo.files import atomic_write
from visionzoo.pixels import to_uint8

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 0x0112


@dataclass
class LoadedImage:
    """An image as the user's file holds it, upright.

    ``pixels`` is ``(H, W, 3)`` RGB in the file's depth (uint8 or uint16); ``alpha`` is the file's own alpha
    channel ``(H, W)`` when it had one; ``grayscale`` says the file had a single channel (its three RGB channels
    are then equal).
    """

    path: Path
    pixels: np.ndarray
    alpha: np.ndarray | None = None
    grayscale: bool = False

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    def rgb8(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        return to_uint8(self.pixels)


def exif_orientation(source: str | os.PathLike | bytes) -> int:
    """The EXIF orientation tag (1..8; 1 = upright) of an image file (a path or its bytes), 1 when it has none."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError, SyntaxError):
        return 1


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an ``(H, W, ...)`` array as EXIF ``orientation`` says, so that it displays upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](pixels)) if orientation in ops else pixels


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read any common image file as upright RGB; raises :class:`DataError` naming the file if unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read image {path}: {err.strerror}; check the path and its permissions") from err
    return decode_image(data, path)


def decode_image(data: bytes, path: str | os.PathLike) -> LoadedImage:
    """An image file's bytes as upright RGB (what :func:`read_image` returns for the file); ``path`` names it in
    errors and in the result. Raises :class:`DataError` if the bytes are not a supported image."""
    path = Path(path)
    encoded = np.frombuffer(data, dtype=np.uint8)
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if encoded.size else None  # keeps depth and alpha
    if decoded is None or decoded.size == 0:
        raise DataError(f"cannot read image {path}: not an image or corrupt; remove or replace the file")
    if decoded.dtype not in (np.uint8, np.uint16):
        raise DataError(f"cannot read image {path}: {decoded.dtype} pixels are not supported; save it as 8/16-bit")
    alpha = None
    if decoded.ndim == 2:
        rgb = np.repeat(decoded[..., None], 3, axis=2)
    elif decoded.shape[2] == 4:
        rgb, alpha = cv2.cvtColor(decoded[..., :3], cv2.COLOR_BGR2RGB), decoded[..., 3]
    else:
        rgb = cv2.cvtColor(decoded[..., :3], cv2.COLOR_BGR2RGB)
    orientation = exif_orientation(data)
    rgb = apply_orientation(rgb, orientation)
    if alpha is not None:
        alpha = apply_orientation(alpha, orientation)
    return LoadedImage(path=path, pixels=rgb, alpha=alpha, grayscale=decoded.ndim == 2)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a ground-truth mask as ``(H, W)`` uint8 (foreground 255)."""
    data = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
    if data is None or data.size == 0:
        raise DataError(f"cannot read mask {path}: not an image or corrupt; remove or replace the file")
    return data


def encode_image(pixels: np.ndarray, suffix: str = ".png") -> bytes:
    """An RGB/RGBA/gray array encoded as the image type ``suffix`` names (OpenCV's encoders, default settings:
    the bytes :func:`write_image` writes). Raises :class:`DataError` for a suffix OpenCV cannot write."""
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    try:
        encoded, data = cv2.imencode(suffix, pixels)
    except cv2.error:  # OpenCV raises for suffixes it has no encoder for
        encoded = False
    if not encoded:
        raise DataError(f"cannot encode an image as {suffix!r}; use an image type such as .png")
    return data.tobytes()


def write_image(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Encode an RGB/RGBA/gray array as the image type ``path``'s suffix names (:func:`encode_image`) and write it
    through the one atomic writer (:func:`visionzoo.files.atomic_write`), so no half-written file is ever left."""
    path = Path(path)
    try:
        data = encode_image(pixels, path.suffix)
    except DataError as err:
        raise DataError(f"could not write {path}; the suffix is not an image type OpenCV writes") from err
    try:
        atomic_write(path, lambda temporary: temporary.write_bytes(data))
    except OSError as err:
        raise DataError(f"could not write {path} ({err.strerror}); check the folder is writable") from err
