"""Resolver: decode the bytes of one image file into a uint8 HWC array.

The loader's hot loop: one call per image, so the common case (an RGB file
asked for as RGB, no resize) is ``Image.open`` + ``np.asarray`` and nothing more.

Runs inside the database server: imports numpy and Pillow only.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

from gpdl_backend.errors import ImageDecodeError, UsageError

__all__ = ["COLOR_MODES", "decode"]

COLOR_MODES = {"RGB": 3, "L": 1}
"""Output colour modes and their channel counts."""

_RESAMPLE = Image.Resampling.BILINEAR
_NUMERIC_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_NUMERIC_RANGES = ((1.0, ("F",)), (255.0, ("I", "F")), (65535.0, ("I", "F")))
"""(upper bound, modes it applies to): values in ``[0, bound]`` map to 0..255."""


def decode(
    data: bytes,
    color_mode: str = "RGB",
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode one image file's bytes into a ``uint8`` array of shape (H, W, C).

    Every Pillow mode is accepted. Alpha is dropped, not composited, as Keras'
    ``load_img`` and ``tf.io.decode_image(channels=3)`` do, so pixels match what
    plain Keras would read. 16-bit, 32-bit and float images are scaled to 8 bits
    (Pillow alone would clip them at 255): ``I;16*`` by ``v / 257``; ``I`` and
    ``F`` by the smallest of [0, 1] (``F`` only), [0, 255], [0, 65535] that
    holds their values, else by the image's own min..max.

    Args:
        data: the whole file's bytes.
        color_mode: ``"RGB"`` (3 channels) or ``"L"`` (grayscale, 1 channel).
            Defaults to ``"RGB"``.
        size: ``(height, width)`` to resize to with bilinear filtering, or
            ``None`` to keep the file's size. Defaults to ``None``.

    Returns:
        A ``uint8`` array (H, W, 3) or (H, W, 1); it may be read-only.

    Raises:
        UsageError: unknown ``color_mode`` or a bad ``size``.
        ImageDecodeError: the bytes are not a readable image (not an image,
            truncated, corrupt, a decompression bomb, an unsupported mode).

    Example:
        >>> decode(png_bytes, "L", size=(28, 28)).shape
        (28, 28, 1)
    """
    if color_mode not in COLOR_MODES:
        raise UsageError(f"color_mode must be one of {sorted(COLOR_MODES)}, not {color_mode!r}")
    if size is not None:
        _check_size(size)
    img = _open(data, color_mode, size)
    try:
        img = _to_mode(img, color_mode)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), _RESAMPLE)
        array = np.asarray(img)
    except ImageDecodeError:
        raise
    except Exception as error:
        raise _decode_error(error) from error
    return array if array.ndim == 3 else array[..., np.newaxis]


def _check_size(size: tuple[int, int]) -> None:
    """Raise UsageError unless ``size`` is two positive ints."""
    if len(size) != 2 or not all(isinstance(n, int) and n > 0 for n in size):
        raise UsageError(f"size must be (height, width) with positive integers, not {size!r}")


def _open(data: bytes, color_mode: str, size: tuple[int, int] | None) -> Image.Image:
    """Open and fully load the image, mapping every failure to ImageDecodeError."""
    try:
        img = Image.open(BytesIO(data))
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and img.width * img.height > limit:
            raise ImageDecodeError(
                f"decompression bomb: {img.width}x{img.height} pixels exceeds {limit}"
            )
        if size is not None and img.format == "JPEG":
            img.draft(color_mode, (size[1], size[0]))
        img.load()
    except ImageDecodeError:
        raise
    except Exception as error:
        raise _decode_error(error) from error
    return img


def _decode_error(error: Exception) -> ImageDecodeError:
    """Name a Pillow failure briefly: not an image, truncated, bomb or corrupt."""
    message = str(error).split(" <", 1)[0]  # drop Pillow's "<_io.BytesIO ...>" repr
    if isinstance(error, Image.UnidentifiedImageError):
        return ImageDecodeError(f"not an image: {message}")
    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return ImageDecodeError(f"decompression bomb: {message}")
    if "truncated" in message:
        return ImageDecodeError(f"truncated image: {message}")
    return ImageDecodeError(f"corrupt image: {type(error).__name__}: {message}")


def _to_mode(img: Image.Image, color_mode: str) -> Image.Image:
    """Return ``img`` in ``color_mode`` ("RGB" or "L"), alpha dropped."""
    mode = img.mode
    if mode == color_mode:
        return img
    if mode in _NUMERIC_MODES:
        gray = Image.fromarray(_scale_to_uint8(np.asarray(img), mode))
        return gray if color_mode == "L" else gray.convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # P -> RGB directly warns about byte transparency
    try:
        return img.convert(color_mode)
    except ValueError as error:
        raise ImageDecodeError(f"unsupported image mode {mode}") from error


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16-bit, 32-bit or float array to uint8 (see ``decode``)."""
    if mode.startswith("I;16"):
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if low >= 0.0:
        for bound, modes in _NUMERIC_RANGES:
            if high <= bound and mode in modes:
                return np.rint(values * (255.0 / bound)).astype(np.uint8)
    span = high - low
    if span == 0.0:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values - low) * (255.0 / span)).astype(np.uint8)
