"""Screenshots to text through the real pillow + RapidOCR path, and every bad-image case."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from PIL import Image

from breakingwind.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from breakingwind.media import MediaService
from breakingwind.media.images import normalise_image
from tests.conftest import make_settings
from tests.media_files import png_bytes, png_declaring, screenshot

EXIF_ORIENTATION = 0x0112


def test_traceback_screenshot_keeps_exception_and_file_line(media: MediaService) -> None:
    text = asyncio.run(media.read_image(png_bytes(screenshot()))).text
    assert "TypeError: sequence item 0: expected str instance, int found" in text
    assert 'File "/home/dev/app/strings.py", line 42, in reverse_words' in text
    assert "separator.join(reversed(words))" in text


def test_exif_rotated_photo_is_read_upright(media: MediaService) -> None:
    # Stored on its side with the EXIF tag that tells viewers to turn it back (6 = 90° clockwise).
    sideways = screenshot().rotate(90, expand=True)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    result = asyncio.run(media.read_image(png_bytes(sideways, exif=exif)))
    assert (result.width, result.height) == screenshot().size
    assert "TypeError" in result.text


def test_transparent_screenshot_is_flattened_onto_white(media: MediaService) -> None:
    picture = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    picture.paste((0, 0, 0, 255), (8, 8, 56, 24))
    normalised = normalise_image(png_bytes(picture), media.settings)
    assert normalised.image.mode == "RGB"
    assert normalised.image.getpixel((1, 1)) == (255, 255, 255)
    assert normalised.image.getpixel((30, 16)) == (0, 0, 0)


def test_20000_by_20000_image_is_refused_from_its_header(media: MediaService) -> None:
    complete = png_declaring(20_000, 20_000, rows=20_000)  # a real image, 48 KB compressed
    started = time.monotonic()
    with pytest.raises(MediaTooLarge, match="max_image_pixels"):
        asyncio.run(media.read_image(complete))
    assert time.monotonic() - started < 1.0


def test_decompression_bomb_is_refused_before_decoding(media: MediaService) -> None:
    bomb = png_declaring(12_000, 12_000)  # 144 Mpixels declared in a 60-byte file
    assert len(bomb) < 100
    with pytest.raises(MediaTooLarge, match="12000x12000"):
        asyncio.run(media.read_image(bomb))


def test_truncated_png_is_corrupt(media: MediaService) -> None:
    whole = png_bytes(screenshot())
    with pytest.raises(CorruptMedia, match="truncated"):
        asyncio.run(media.read_image(whole[: len(whole) // 2]))


def test_cut_header_is_corrupt_not_unsupported(media: MediaService) -> None:
    with pytest.raises(CorruptMedia, match="PNG"):
        asyncio.run(media.read_image(png_bytes(screenshot())[:20]))


def test_text_file_is_not_an_image(media: MediaService) -> None:
    with pytest.raises(UnsupportedMedia, match="not an image"):
        asyncio.run(media.read_image(b"def reverse(s):\n    return s[::-1]\n" * 10))


def test_zero_length_image_is_refused(media: MediaService) -> None:
    with pytest.raises(CorruptMedia, match="empty"):
        asyncio.run(media.read_image(b""))


def test_image_over_the_byte_limit_is_refused_by_size(tmp_path: Path) -> None:
    small = MediaService(make_settings(tmp_path, "[media]\nmax_image_bytes = 1024\n"))
    with pytest.raises(MediaTooLarge, match="max_image_bytes"):
        asyncio.run(small.read_image(png_bytes(screenshot())))
