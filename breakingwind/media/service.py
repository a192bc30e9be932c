"""`MediaService`: the one object the routes and agents use for audio and images.

Built from `Settings` in the app's lifespan and kept on `app.state.media`. Every model loads lazily
on its own thread (`LazyModel`) and unloads after `media.idle_unload_s`; header checks and decoding
run on the default thread pool, so the event loop never blocks and a bad file is refused before it
waits behind another request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from breakingwind.config import Settings
from breakingwind.media.audio import (
    TranscribeOptions,
    Transcript,
    check_audio,
    decode_audio,
    load_whisper,
    resolve_whisper_model,
    transcribe_samples,
)
from breakingwind.media.images import normalise_image
from breakingwind.media.lazy import LazyModel
from breakingwind.media.ocr import ImageText, load_ocr, read_text
from breakingwind.media.parts import PreprocessorInput, parts_to_text
from breakingwind.media.source import MediaSource
from breakingwind.media.vision import describe, load_vision


class MediaService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings.media
        idle = self.settings.idle_unload_s or None  # 0 means never
        whisper = partial(load_whisper, resolve_whisper_model(settings), self.settings)
        self.whisper = LazyModel("whisper", whisper, idle)
        self.ocr = LazyModel("ocr", partial(load_ocr, self.settings), idle)
        self.vision = (
            LazyModel("vision", partial(load_vision, settings), idle)
            if self.settings.vision_model is not None
            else None
        )

    async def transcribe(
        self,
        source: MediaSource,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        progress: Callable[[float, float], None] | None = None,
    ) -> Transcript:
        """Speech to text. Raises a `MediaError` for bad audio before decoding it whole.

        `progress(seconds_done, seconds_total)` is called on the event loop after each segment.
        Cancelling the awaiting task stops transcription at the next segment.
        """
        await asyncio.to_thread(check_audio, source, self.settings)
        samples = await asyncio.to_thread(decode_audio, source, self.settings.max_audio_seconds)
        options = TranscribeOptions(language, prompt, temperature, _on_loop(progress))
        job = partial(transcribe_samples, samples=samples, options=options, settings=self.settings)
        try:
            return await self.whisper.run(job)
        except asyncio.CancelledError:
            options.cancelled.set()
            raise

    async def read_image(self, source: MediaSource, *, describe_image: bool = True) -> ImageText:
        """OCR text of a picture, plus the vision model's description when one is configured.
        Raises a `MediaError` for a bad image before decoding its pixels."""
        picture = await asyncio.to_thread(normalise_image, source, self.settings)
        text = await self.ocr.run(partial(read_text, picture=picture))
        if describe_image and self.vision is not None:
            max_tokens = self.settings.vision_max_tokens
            description = await self.vision.run(
                partial(describe, picture=picture, max_tokens=max_tokens)
            )
            text = replace(text, description=description)
        return text

    async def parts_to_text(
        self, content: str | Sequence[Any], project_root: Path
    ) -> PreprocessorInput:
        """OpenAI message content (a string or text/image_url/input_audio parts) as text."""
        return await parts_to_text(self, content, project_root)

    def loaded(self) -> dict[str, bool]:
        """Which media models are in memory now."""
        slots = [self.whisper, self.ocr] + ([self.vision] if self.vision else [])
        return {slot.name: slot.loaded for slot in slots}

    async def close(self) -> None:
        for slot in (self.whisper, self.ocr, self.vision):
            if slot is not None:
                await slot.close()


def _on_loop(
    callback: Callable[[float, float], None] | None,
) -> Callable[[float, float], None] | None:
    """Wrap `callback` so that a worker thread calling it runs it on this event loop."""
    if callback is None:
        return None
    loop = asyncio.get_running_loop()
    return lambda done, total: loop.call_soon_threadsafe(callback, done, total)
