"""Encoded pictures checked before they are decoded: whole, and of a size a lane camera gives.

A JPEG cut short still decodes: OpenCV fills the missing rows with grey, and FFmpeg's MJPEG
decoder with the previous frame's pixels, so the last truck's plate can be read again, sure
of itself, for the next. A small file can declare a huge picture (a decompression bomb):
decoded, it takes gigabytes. Both are caught here from the bytes and the header alone
(Pillow reads the size without decoding), before OpenCV decodes anything.
"""

from __future__ import annotations

import io
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image as PilImage

__all__ = ["MAX_PIXELS", "MIN_SIDE", "BadImage", "check_size", "decode", "read_image"]

MAX_PIXELS = 8192 * 4320  # 8K UHD: more than any lane camera gives
MIN_SIDE = 16  # a frame narrower than this shows nothing a lane reads

Image = NDArray[np.uint8]

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


class BadImage(ValueError):
    """An encoded picture that is refused, and why."""


def check_size(width: int, height: int) -> None:
    """Raise ``BadImage`` unless a ``width`` x ``height`` picture is one a lane camera gives.

    >>> check_size(1920, 1080)
    >>> try:
    ...     check_size(12000, 12000)
    ... except BadImage as exc:
    ...     print(exc)
    12000x12000 pixels: more than any lane camera gives (8192x4320)
    """
    if width * height > MAX_PIXELS:
        raise BadImage(f"{width}x{height} pixels: more than any lane camera gives (8192x4320)")
    if min(width, height) < MIN_SIDE:
        raise BadImage(f"{width}x{height} pixels: too small to show anything")


def _check_whole(data: bytes) -> None:
    tail = data.rstrip(b"\r\n\x00")  # what some cameras put after the end marker
    if data.startswith(_JPEG_SOI) and not tail.endswith(_JPEG_EOI):
        raise BadImage(f"JPEG cut short ({len(data)} bytes, no end marker)")
    if data.startswith(_PNG_SIGNATURE) and not tail.endswith(_PNG_END):
        raise BadImage(f"PNG cut short ({len(data)} bytes, no end chunk)")


def _declared_size(data: bytes) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PilImage.DecompressionBombWarning)
            with PilImage.open(io.BytesIO(data)) as picture:
                width, height = picture.size
    except PilImage.DecompressionBombError as exc:
        raise BadImage(f"more than any lane camera gives: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's ways of saying "not an image"
        raise BadImage(f"not an image ({len(data)} bytes): {exc}") from None
    return int(width), int(height)


def decode(data: bytes) -> Image:
    """A whole, sanely sized encoded picture as BGR pixels; ``BadImage`` otherwise."""
    if not data:
        raise BadImage("empty")
    _check_whole(data)
    check_size(*_declared_size(data))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadImage(f"cannot decode ({len(data)} bytes)")
    return np.asarray(image, dtype=np.uint8)


def read_image(path: str | Path) -> Image:
    """A picture file's pixels (BGR); ``BadImage`` saying why when it cannot be one (missing,
    unreadable, not a regular file, cut short, too large, not an image)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise BadImage("not a regular file")  # a FIFO or device would block the read
        data = path.read_bytes()
    except OSError as exc:
        raise BadImage(f"cannot read: {exc.strerror or exc}") from None
    return decode(data)
