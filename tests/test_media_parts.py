"""OpenAI content parts (text, image_url, input_audio) to `PreprocessorInput`."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from breakingwind.errors import CorruptMedia, MediaPathRefused, UnsupportedMedia
from breakingwind.media import MediaService, PreprocessorInput
from breakingwind.media.parts import content_text
from tests.media_files import png_bytes, screenshot


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_parts_become_typed_text_transcript_and_ocr_text(
    media: MediaService, speech_wav: Path, tmp_path: Path
) -> None:
    parts = [
        {"type": "text", "text": "Please fix this."},
        {"type": "image_url", "image_url": {"url": _data_url(png_bytes(screenshot()))}},
        {
            "type": "input_audio",
            "input_audio": {
                "data": base64.b64encode(speech_wav.read_bytes()).decode(),
                "format": "wav",
            },
        },
    ]
    result = asyncio.run(media.parts_to_text(parts, tmp_path))
    assert result.typed_text == "Please fix this."
    assert "TypeError" in result.images[0].text
    assert "reverse" in result.transcripts[0].text.lower()


def test_image_path_inside_the_project_is_read(media: MediaService, tmp_path: Path) -> None:
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "error.png").write_bytes(png_bytes(screenshot()))
    part = {"type": "image_url", "image_url": {"url": "shots/error.png"}}
    result = asyncio.run(media.parts_to_text([part], tmp_path))
    assert "line 42" in result.images[0].text


@pytest.mark.parametrize("url", ["../outside.png", "/etc/hostname", "file:///etc/hostname"])
def test_path_outside_the_project_is_refused(media: MediaService, tmp_path: Path, url: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.png").write_bytes(png_bytes(screenshot()))
    part = {"type": "image_url", "image_url": {"url": url}}
    with pytest.raises(MediaPathRefused, match="outside the project root") as caught:
        asyncio.run(media.parts_to_text([{"type": "text", "text": "x"}, part], project))
    assert caught.value.param == "content[1]"


def test_symlink_out_of_the_project_is_refused(media: MediaService, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "secret.png").write_bytes(png_bytes(screenshot()))
    (project / "innocent.png").symlink_to(tmp_path / "secret.png")
    part = {"type": "image_url", "image_url": {"url": "innocent.png"}}
    with pytest.raises(MediaPathRefused, match="outside the project root"):
        asyncio.run(media.parts_to_text([part], project))


def test_remote_image_url_is_refused_without_fetching(media: MediaService, tmp_path: Path) -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/error.png"}}
    with pytest.raises(UnsupportedMedia, match="never fetched"):
        asyncio.run(media.parts_to_text([part], tmp_path))


def test_unknown_part_type_is_refused(media: MediaService, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="'video_url' is not supported"):
        asyncio.run(media.parts_to_text([{"type": "video_url", "video_url": {}}], tmp_path))


def test_bad_base64_audio_is_corrupt(media: MediaService, tmp_path: Path) -> None:
    part = {"type": "input_audio", "input_audio": {"data": "not base64!", "format": "wav"}}
    with pytest.raises(CorruptMedia, match="content\\[0\\]: the audio data is not valid base64"):
        asyncio.run(media.parts_to_text([part], tmp_path))


def test_plain_string_content_is_typed_text(media: MediaService, tmp_path: Path) -> None:
    result = asyncio.run(media.parts_to_text("reverse a string", tmp_path))
    assert result.typed_text == "reverse a string" and not result.has_media


def test_material_is_rendered_once(media: MediaService, tmp_path: Path) -> None:
    """A task whose screenshot was read at submit time is not wrapped a second time when the
    preprocessor renders its input."""
    parts = [
        {"type": "text", "text": "Fix this crash."},
        {"type": "image_url", "image_url": {"url": _data_url(png_bytes(screenshot()))}},
    ]
    task_text = asyncio.run(content_text(media, parts, tmp_path, "input"))
    assert task_text.count("# Request material") == 1 and "TypeError" in task_text
    assert PreprocessorInput(task_text, [], []).render() == task_text
    typed = PreprocessorInput("Fix add().", [], []).render()
    assert typed.count("# Request material") == 1 and "Fix add()." in typed
