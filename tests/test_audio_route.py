"""POST /v1/audio/transcriptions over real HTTP: the official openai SDK against a live uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from breakingwind.api.app import create_app
from breakingwind.engine import Engine
from breakingwind.media import MediaService
from tests.conftest import LiveServer, make_settings
from tests.media_files import png_bytes, screenshot, wav_header


@pytest.fixture(scope="module")
def server(engine: Engine, media: MediaService) -> Iterator[LiveServer]:
    with LiveServer(create_app(engine.settings, engine, media)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_openai_sdk_transcribes_speech(client: openai.OpenAI, speech_wav: Path) -> None:
    with speech_wav.open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    text = result.text.lower()
    assert all(word in text for word in ("function", "reverse", "string", "unit test")), text


def test_verbose_json_has_timed_segments(client: openai.OpenAI, speech_wav: Path) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1", file=speech_wav, response_format="verbose_json", language="en"
    )
    assert result.language == "en" and result.duration > 2
    assert result.segments and result.segments[0].start >= 0
    assert "function" in result.text.lower()


@pytest.mark.parametrize(
    ("response_format", "marker"), [("text", "function"), ("srt", " --> "), ("vtt", "webvtt")]
)
def test_plain_text_formats(
    client: openai.OpenAI, speech_wav: Path, response_format: str, marker: str
) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1", file=speech_wav, response_format=response_format
    )
    assert isinstance(result, str) and marker in result.lower()


def test_truncated_upload_is_a_400_with_an_openai_error(
    client: openai.OpenAI, speech_wav: Path
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(
            model="whisper-1", file=("task.wav", speech_wav.read_bytes()[:30])
        )
    error = caught.value.body
    assert error["code"] == "corrupt_media" and error["param"] == "file"
    assert error["type"] == "invalid_request_error"
    assert "truncated or corrupt" in error["message"]


def test_image_upload_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(
            model="whisper-1", file=("shot.png", png_bytes(screenshot()))
        )
    assert caught.value.body["code"] == "unsupported_media"


def test_two_hour_upload_is_a_413(client: openai.OpenAI) -> None:
    two_hours = wav_header(7200, data=b"\x00" * 32_000)
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=("long.wav", two_hours))
    assert caught.value.status_code == 413
    assert "2:00:00" in caught.value.body["message"]


def test_upload_over_the_byte_limit_is_a_413_before_it_is_parsed(
    tmp_path: Path, engine: Engine
) -> None:
    settings = make_settings(tmp_path, "[media]\nmax_audio_bytes = 2048\n")
    with LiveServer(create_app(settings, engine)) as live:
        response = httpx.post(
            f"{live.url}/v1/audio/transcriptions",
            files={"file": ("big.wav", wav_header(10, data=b"\x00" * 200_000))},
            data={"model": "whisper-1"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "media_too_large"


def test_missing_file_field_is_a_400(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/audio/transcriptions", files={"model": (None, "whisper-1")}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_unknown_response_format_names_the_field(server: LiveServer, speech_wav: Path) -> None:
    response = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": ("task.wav", speech_wav.read_bytes())},
        data={"model": "whisper-1", "response_format": "mp3"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"
