"""Tests of the resolver: decoding image bytes of every Pillow mode."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from gpdl_backend.errors import ImageDecodeError, UsageError
from gpdl_backend.server.resolver import decode


def encode(img: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """Save ``img`` in ``fmt`` and return the file's bytes."""
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def rgb_pixels(height: int = 6, width: int = 5) -> np.ndarray:
    """A deterministic RGB test pattern."""
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_rgb_png_round_trips_exactly() -> None:
    pixels = rgb_pixels()
    out = decode(encode(Image.fromarray(pixels)))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, pixels)


def test_grayscale_output_has_one_channel() -> None:
    gray = np.arange(30, dtype=np.uint8).reshape(6, 5)
    out = decode(encode(Image.fromarray(gray)), "L")
    assert out.shape == (6, 5, 1)
    np.testing.assert_array_equal(out[:, :, 0], gray)


def test_grayscale_to_rgb_repeats_the_channel() -> None:
    gray = np.arange(30, dtype=np.uint8).reshape(6, 5)
    out = decode(encode(Image.fromarray(gray)))
    assert out.shape == (6, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_rgb_to_grayscale_uses_luma() -> None:
    img = Image.new("RGB", (2, 2), (255, 0, 0))
    out = decode(encode(img), "L")
    assert out.shape == (2, 2, 1)
    assert out[0, 0, 0] == 76  # ITU-R 601-2: 0.299 * 255


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_alpha_is_dropped(mode: str) -> None:
    img = Image.new("RGBA", (3, 3), (10, 200, 30, 0)).convert(mode)
    expected = np.asarray(img.convert("RGB"))
    data = encode(img, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == mode
    out = decode(data)
    assert out.shape == (3, 3, 3)
    np.testing.assert_array_equal(out, expected)


def test_palette_with_transparency_decodes_without_warning() -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    data = encode(img, transparency=bytes([0, 128]))
    assert Image.open(io.BytesIO(data)).mode == "P"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = decode(data)
        gray = decode(data, "L")
    assert tuple(out[0, 0]) == (0, 255, 0)
    assert gray.shape == (4, 4, 1)
    assert gray[0, 0, 0] == 150  # 0.587 * 255, green


def test_palette_without_transparency() -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([1, 2, 3] + [0] * 765)
    assert tuple(decode(encode(img))[3, 3]) == (1, 2, 3)


def test_cmyk_jpeg() -> None:
    img = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    data = encode(img, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = decode(data)
    assert out.shape == (8, 8, 3)
    red, green, blue = (int(v) for v in out[4, 4])
    assert red > 200 and green < 60 and blue < 60


def test_ycbcr_and_bilevel_images() -> None:
    ycbcr = Image.new("RGB", (4, 4), (0, 0, 255)).convert("YCbCr")
    assert decode(encode(ycbcr, "JPEG", quality=95))[2, 2, 2] > 200
    assert decode(encode(ycbcr, "TIFF"))[2, 2, 2] > 200
    bilevel = Image.new("1", (4, 4), 1)
    assert Image.open(io.BytesIO(encode(bilevel))).mode == "1"
    np.testing.assert_array_equal(decode(encode(bilevel), "L"), 255)


def test_16bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 257, 1000], [30000, 65280, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = decode(data, "L")[:, :, 0]
    np.testing.assert_array_equal(out, [[0, 1, 4], [117, 254, 255]])
    assert decode(data).shape == (2, 3, 3)


def test_16bit_big_endian_tiff() -> None:
    values = np.array([[0, 512], [32768, 65535]], dtype=np.uint16)
    img = Image.frombytes("I;16B", (2, 2), values.astype(">u2").tobytes())
    data = encode(img, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I;16B"
    np.testing.assert_array_equal(decode(data, "L")[:, :, 0], [[0, 2], [128, 255]])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[0, 100], [200, 255]], [[0, 100], [200, 255]]),  # fits 8 bits: kept
        ([[0, 257], [1000, 65535]], [[0, 1], [4, 255]]),  # fits 16 bits: / 257
        ([[-10, 0], [10, 90]], [[0, 26], [51, 255]]),  # otherwise: min..max
    ],
)
def test_32bit_integer_images(values: list[list[int]], expected: list[list[int]]) -> None:
    img = Image.fromarray(np.array(values, dtype=np.int32), "I")
    data = encode(img, "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "I"
    np.testing.assert_array_equal(decode(data, "L")[:, :, 0], expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[0.0, 0.5], [0.25, 1.0]], [[0, 128], [64, 255]]),  # [0, 1]: * 255
        ([[0.0, 2.0], [100.0, 255.0]], [[0, 2], [100, 255]]),  # [0, 255]: kept
        ([[-1.0, 0.0], [1.0, float("nan")]], [[0, 128], [255, 128]]),  # min..max, nan = 0
    ],
)
def test_float_images(values: list[list[float]], expected: list[list[int]]) -> None:
    data = encode(Image.fromarray(np.array(values, dtype=np.float32), "F"), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == "F"
    np.testing.assert_array_equal(decode(data, "L")[:, :, 0], expected)


def test_constant_wide_range_image_is_black() -> None:
    data = encode(Image.fromarray(np.full((2, 2), -5, dtype=np.int32), "I"), "TIFF")
    np.testing.assert_array_equal(decode(data, "L"), 0)


def test_resize_takes_height_then_width() -> None:
    out = decode(encode(Image.fromarray(rgb_pixels(40, 30))), size=(10, 20))
    assert out.shape == (10, 20, 3)
    assert decode(encode(Image.new("L", (9, 9))), "L", size=(3, 4)).shape == (3, 4, 1)


def test_resize_of_uniform_image_keeps_its_colour() -> None:
    out = decode(encode(Image.new("RGB", (64, 48), (10, 20, 30))), size=(7, 5))
    np.testing.assert_array_equal(out, np.broadcast_to([10, 20, 30], (7, 5, 3)))


def test_jpeg_resize_uses_draft_and_hits_the_size() -> None:
    data = encode(Image.new("RGB", (400, 300), (0, 128, 255)), "JPEG", quality=95)
    out = decode(data, size=(30, 40))
    assert out.shape == (30, 40, 3)
    assert abs(int(out[15, 20, 2]) - 255) <= 3
    assert decode(data, "L", size=(30, 40)).shape == (30, 40, 1)


def test_same_size_is_not_resampled() -> None:
    pixels = rgb_pixels()
    np.testing.assert_array_equal(decode(encode(Image.fromarray(pixels)), size=(6, 5)), pixels)


def test_text_file_is_not_an_image() -> None:
    with pytest.raises(ImageDecodeError, match=r"^not an image: cannot identify image file$"):
        decode(b"hello, world\n")


def test_empty_bytes_are_not_an_image() -> None:
    with pytest.raises(ImageDecodeError, match=r"^not an image"):
        decode(b"")


def test_truncated_png() -> None:
    data = encode(Image.fromarray(rgb_pixels(64, 64)))
    with pytest.raises(ImageDecodeError, match=r"^truncated image: "):
        decode(data[: len(data) // 2])


def test_corrupt_png_data() -> None:
    data = bytearray(encode(Image.fromarray(rgb_pixels(64, 64))))
    start = data.index(b"IDAT") + 8
    data[start : start + 200] = bytes(200)
    with pytest.raises(ImageDecodeError, match=r"^corrupt image: "):
        decode(bytes(data))


def test_decompression_bomb_warning_becomes_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (30, 30)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 900 > 600: Pillow only warns
    with (
        pytest.warns(Image.DecompressionBombWarning),
        pytest.raises(ImageDecodeError, match=r"^decompression bomb: 30x30"),
    ):
        decode(data)


def test_decompression_bomb_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("RGB", (30, 30)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 900 > 2 * 100: Pillow raises
    with pytest.raises(ImageDecodeError, match=r"^decompression bomb: "):
        decode(data)


def test_bad_color_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="color_mode"):
        decode(b"whatever", "CMYK")


@pytest.mark.parametrize("size", [(0, 5), (5,), (2.5, 3), (-1, -1)])
def test_bad_size_is_a_usage_error(size: tuple[int, int]) -> None:
    with pytest.raises(UsageError, match="size"):
        decode(encode(Image.new("RGB", (2, 2))), size=size)
