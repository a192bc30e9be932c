"""Measure media throughput: Whisper (audio seconds per wall second) and OCR (seconds per image).

Usage: .venv/bin/python scripts/bench_media.py  (needs espeak-ng; default [media] settings)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from breakingwind.config import load_settings  # noqa: E402
from breakingwind.media import MediaService  # noqa: E402
from tests.media_files import SPOKEN_TASK, png_bytes, screenshot, speak  # noqa: E402

PARAGRAPH = (
    "Open the file strings dot py and look at the function called reverse words. "
    "It fails with a type error when the list contains numbers. Convert every item to a string "
    "before joining, then add a unit test that passes a list with an integer and checks the "
    "result. Keep the public interface the same and update the documentation string. "
)


async def main() -> None:
    print("load average before: " + _load())
    media = MediaService(load_settings(None, environ={}))
    folder = Path(tempfile.mkdtemp())
    short = speak(SPOKEN_TASK, folder / "short.wav")
    long = speak(PARAGRAPH * 4, folder / "long.wav")

    started = time.monotonic()
    await media.transcribe(short)
    print(f"whisper first call (load + {short.name}): {time.monotonic() - started:.2f} s")
    for path in (short, long):
        transcript = await media.transcribe(path)
        print(
            f"whisper {path.name}: {transcript.duration_s:.1f} s of audio in"
            f" {transcript.elapsed_s:.2f} s = {transcript.speed:.1f} audio s per wall s"
        )

    image = png_bytes(screenshot())
    started = time.monotonic()
    await media.read_image(image)
    print(f"ocr first call (load + 900x160 traceback): {time.monotonic() - started:.2f} s")
    for name, picture in (("900x160 traceback", image), ("1920x1080 screen", _full_screen())):
        times = [(await media.read_image(picture)).ocr_s for _ in range(5)]
        print(f"ocr {name}: median {statistics.median(times):.2f} s per image (5 runs)")
    await media.close()
    print("load average after: " + _load())


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _full_screen() -> bytes:
    from PIL import Image

    canvas = Image.new("RGB", (1920, 1080), (30, 30, 30))
    shot = screenshot()
    for row in range(6):
        canvas.paste(shot, (40 + (row % 2) * 960, 40 + row * 170))
    return png_bytes(canvas)


if __name__ == "__main__":
    asyncio.run(main())
