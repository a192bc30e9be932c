"""Media model lifecycle: lazy load, idle unload, no network, and the [media] settings."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from breakingwind.errors import ConfigError, ModelLoadError
from breakingwind.media import MediaService
from tests.conftest import make_settings
from tests.media_files import png_bytes, screenshot

OFFLINE_SCRIPT = """
import asyncio, sys
from pathlib import Path
from breakingwind.config import load_settings
from breakingwind.media import MediaService

async def main():
    media = MediaService(load_settings(None, environ={}))
    transcript = await media.transcribe(Path(sys.argv[1]))
    image = await media.read_image(Path(sys.argv[2]))
    await media.close()
    print("OK", transcript.text.lower().count("function"), image.text.count("TypeError"))

asyncio.run(main())
"""


def test_models_load_lazily_and_unload_when_idle(tmp_path: Path) -> None:
    media = MediaService(make_settings(tmp_path, "[media]\nidle_unload_s = 0.3\n"))
    assert media.loaded() == {"whisper": False, "ocr": False}

    async def use_then_idle() -> tuple[bool, bool]:
        await media.read_image(png_bytes(screenshot()))
        loaded_after_use = media.loaded()["ocr"]
        await asyncio.sleep(0.8)
        still_loaded = media.loaded()["ocr"]
        await media.close()
        return loaded_after_use, still_loaded

    assert asyncio.run(use_then_idle()) == (True, False)


def test_models_run_without_any_network(
    tmp_path: Path, speech_wav: Path, clean_env: dict[str, str]
) -> None:
    """Every proxy points at a closed port and the HF hub is offline: a download would fail."""
    image = tmp_path / "shot.png"
    image.write_bytes(png_bytes(screenshot()))
    dead = "http://127.0.0.1:9"
    env = {**clean_env, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(speech_wav), str(image)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK 1 1"
    assert time.monotonic() - started < 60


def test_vision_model_needs_its_mmproj(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vision_model and mmproj must be set together"):
        make_settings(tmp_path, '[media]\nvision_model = "llava.gguf"\n')


def test_unknown_media_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="media.whisper_size: unknown key"):
        make_settings(tmp_path, '[media]\nwhisper_size = "tiny"\n')


def test_missing_vision_files_fail_the_description_with_the_path(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, '[media]\nvision_model = "vlm.gguf"\nmmproj = "mmproj.gguf"\n'
    )
    media = MediaService(settings)
    with pytest.raises(ModelLoadError, match="vlm.gguf does not exist"):
        asyncio.run(media.read_image(png_bytes(screenshot())))
    asyncio.run(media.close())
