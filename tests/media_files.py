"""Media made on the spot for the tests: speech from espeak-ng, screenshots drawn with pillow, and
bad files built byte by byte (cheap headers that claim far more than they hold)."""

from __future__ import annotations

import io
import struct
import subprocess
import zlib
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SPOKEN_TASK = "add a function that reverses a string and a unit test"
TRACEBACK_LINES = (
    "Traceback (most recent call last):",
    '  File "/home/dev/app/strings.py", line 42, in reverse_words',
    "    return separator.join(reversed(words))",
    "TypeError: sequence item 0: expected str instance, int found",
)


def speak(text: str, target: Path) -> Path:
    """A WAV of `text` spoken by espeak-ng (130 words a minute, which tiny.en hears best)."""
    subprocess.run(["espeak-ng", "-s", "130", "-w", str(target), text], check=True)
    return target


def screenshot(lines: tuple[str, ...] = TRACEBACK_LINES, mode: str = "RGB") -> Image.Image:
    """Light text on a dark terminal background, in pillow's bundled font (no system fonts)."""
    font = ImageFont.load_default(size=20)
    image = Image.new("RGB", (900, 40 + 30 * len(lines)), (30, 30, 30))
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        draw.text((16, 16 + 30 * row), line, font=font, fill=(230, 230, 230))
    return image.convert(mode)


def png_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def wav_header(seconds: float, rate: int = 16_000, data: bytes = b"") -> bytes:
    """A mono 16-bit WAV whose header declares `seconds` of audio, followed by `data` only."""
    size = int(seconds * rate) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", size)
        + data
    )


def png_declaring(width: int, height: int, rows: int = 0) -> bytes:
    """A well-formed PNG (valid CRCs) declaring width x height 1-bit pixels, holding `rows` rows
    of zeros (all of them makes a real, complete image: it compresses ~1000:1)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND")


def _chunk(kind: bytes, data: bytes = b"") -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
