"""Checking what clients send before any of it is decoded in full: size, type (by content, never by name) and
pixel count (decompression bombs: a small PNG may declare 30000 x 30000 pixels)."""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image

from visionzoo.data.images import LoadedImage, decode_image
from visionzoo.errors import DataError
from visionzoo.predict.video import VIDEO_SUFFIXES


class ClientError(DataError):
    """A request the service refuses: its HTTP ``status``, one line, and any headers to answer with."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


#: Pillow's name of each image format the zoo reads -> the suffix a saved upload gets (MPO: phones' JPEGs).
IMAGE_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tiff"}


def safe_name(name: str | None, default: str) -> str:
    """A client's file name reduced to a plain name in one folder (no paths, no hidden files)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).lstrip("._")
    return base[:100] or default


def check_size(data: bytes, max_bytes: int, what: str = "upload") -> None:
    if not data:
        raise ClientError(f"the {what} is empty; send an image file as the request body or a multipart 'file'")
    if len(data) > max_bytes:
        raise ClientError(f"the {what} is {len(data) / 1e6:.1f} MB, over this server's limit of "
                          f"{max_bytes / 1e6:.1f} MB (serve.max_upload_mb)", status=413)


def check_image(data: bytes, name: str, max_bytes: int, max_pixels: int) -> str:
    """Check an uploaded image: its size, its header's pixel count, that it decodes in full (a truncated JPEG is
    refused, not padded with grey) and that it is a format the zoo reads. Returns that format's suffix (``.png``
    ...), whatever the upload's name says. Raises :class:`ClientError`."""
    check_size(data, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # reads the header only
                width, height = header.size
                if width * height > max_pixels:
                    raise ClientError(f"{name} declares {width} x {height} pixels, over this server's limit of "
                                      f"{max_pixels / 1e6:.0f} MP (serve.max_megapixels)", status=413)
                header.load()  # decodes everything: truncated or corrupt data fails here
                kind = header.format
    except ClientError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ClientError(f"{name} declares too many pixels ({err}); send a smaller image", status=413) from err
    except Image.UnidentifiedImageError as err:
        raise ClientError(f"{name} is not an image (its content is no PNG, JPEG, WebP, BMP or TIFF)") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ClientError(f"{name} is truncated or corrupt ({err}); send the whole file") from err
    if kind not in IMAGE_FORMATS:
        raise ClientError(f"{name} is a {kind} image; send a PNG, JPEG, WebP, BMP or TIFF")
    return IMAGE_FORMATS[kind]


def image_from_upload(data: bytes, name: str, max_bytes: int, max_pixels: int) -> LoadedImage:
    """An uploaded image, checked (:func:`check_image`) and decoded as predict.py reads files. Raises
    :class:`ClientError`."""
    check_image(data, name, max_bytes, max_pixels)
    try:
        return decode_image(data, name)
    except DataError as err:
        raise ClientError(str(err)) from err


def check_video(data: bytes, name: str, max_bytes: int) -> None:
    """A video upload: its size and that FFmpeg can open it and finds a video stream."""
    check_size(data, max_bytes)
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise ClientError(f"{name} has no video stream")
    except ClientError:
        raise
    except (av.error.FFmpegError, ValueError) as err:
        raise ClientError(f"{name} is not a readable video ({err}); send {', '.join(VIDEO_SUFFIXES)}") from err
