"""Speech to text through real faster-whisper (embedded tiny.en), and every bad-audio case."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from breakingwind.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from breakingwind.media import MediaService, Transcript
from breakingwind.media.audio import decode_audio
from tests.conftest import make_settings
from tests.media_files import png_bytes, screenshot, wav_header

KEY_WORDS = ("function", "reverse", "string", "unit test")


def test_speech_transcribes_to_the_spoken_task(media: MediaService, speech_wav: Path) -> None:
    transcript = asyncio.run(media.transcribe(speech_wav))
    assert all(word in transcript.text.lower() for word in KEY_WORDS), transcript.text
    assert transcript.language == "en"
    assert 2.0 < transcript.duration_s < 6.0
    assert transcript.segments and transcript.segments[-1].end <= transcript.duration_s + 0.5


def test_progress_is_reported_on_the_event_loop(media: MediaService, speech_wav: Path) -> None:
    async def transcribe_with_progress() -> tuple[Transcript, list[tuple[float, float]], bool]:
        reports: list[tuple[float, float]] = []
        loop = asyncio.get_running_loop()
        on_loop = []

        def progress(done: float, total: float) -> None:
            on_loop.append(asyncio.get_running_loop() is loop)
            reports.append((done, total))

        transcript = await media.transcribe(speech_wav.read_bytes(), progress=progress)
        await asyncio.sleep(0)  # let the last call_soon_threadsafe callback run
        return transcript, reports, all(on_loop)

    transcript, reports, all_on_loop = asyncio.run(transcribe_with_progress())
    assert reports and all_on_loop
    assert reports[-1][1] == pytest.approx(transcript.duration_s)


def test_two_hour_wav_is_refused_from_its_header(media: MediaService) -> None:
    two_hours = wav_header(7200, data=b"\x00" * 32_000)  # claims 2 h, holds 1 s
    started = time.monotonic()
    with pytest.raises(MediaTooLarge, match=r"2:00:00 long; the limit is 0:30:00"):
        asyncio.run(media.transcribe(two_hours))
    assert time.monotonic() - started < 1.0


def test_decoding_stops_at_the_duration_limit(speech_wav: Path) -> None:
    # Guards containers whose header gives no duration (or a wrong one): the decode itself stops.
    with pytest.raises(MediaTooLarge, match="runs past the limit of 0:00:01"):
        decode_audio(speech_wav, max_seconds=1.0)


def test_truncated_wav_is_corrupt(media: MediaService, speech_wav: Path) -> None:
    with pytest.raises(CorruptMedia, match="wav file is truncated or corrupt"):
        asyncio.run(media.transcribe(speech_wav.read_bytes()[:30]))


def test_zero_length_audio_is_refused(media: MediaService) -> None:
    with pytest.raises(CorruptMedia, match="empty"):
        asyncio.run(media.transcribe(b""))


def test_image_sent_as_audio_is_unsupported(media: MediaService) -> None:
    with pytest.raises(UnsupportedMedia, match="png data, not audio"):
        asyncio.run(media.transcribe(png_bytes(screenshot())))


def test_audio_over_the_byte_limit_is_refused_by_size(tmp_path: Path, speech_wav: Path) -> None:
    small = MediaService(make_settings(tmp_path, "[media]\nmax_audio_bytes = 4096\n"))
    with pytest.raises(MediaTooLarge, match="max_audio_bytes"):
        asyncio.run(small.transcribe(speech_wav))


def test_english_only_model_refuses_another_language(media: MediaService, speech_wav: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="English-only"):
        asyncio.run(media.transcribe(speech_wav, language="de"))
