"""POST /v1/audio/transcriptions: OpenAI-compatible speech to text (multipart upload).

Parses the form with bounded sizes, calls `MediaService.transcribe` and shapes the answer in the
requested `response_format`. Errors go to the app's central handlers (OpenAI-shaped bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Message, Receive

from breakingwind.config import MediaSettings
from breakingwind.errors import InvalidRequest, MediaError, MediaTooLarge
from breakingwind.media import MediaService, Transcript

# Room for the form's other fields and multipart boundaries on top of the audio itself.
_FORM_OVERHEAD = 64 * 1024
TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"


def upload_limit(settings: MediaSettings) -> int:
    """The largest body the transcription route accepts: the audio limit plus form overhead."""
    return settings.max_audio_bytes + _FORM_OVERHEAD


class TranscriptionForm(BaseModel):
    """The form fields besides `file`; OpenAI fields we do not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="Accepted for compatibility (e.g. whisper-1).")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$", description="ISO-639-1 code.")
    prompt: str | None = Field(None, max_length=4096, description="Text that primes the decoder.")
    response_format: Literal["json", "text", "verbose_json", "srt", "vtt"] = "json"
    temperature: float = Field(0.0, ge=0.0, le=1.0)
    stream: bool = False


async def create_transcription(request: Request) -> Response:
    media: MediaService = request.app.state.media
    limit = upload_limit(media.settings)
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _upload_too_large(media)
    bounded = Request(request.scope, _bounded_receive(request.receive, limit, media))
    try:
        async with bounded.form(max_files=1, max_fields=16, max_part_size=64 * 1024) as form:
            return await _transcribe_form(media, form)
    except HTTPException as exc:  # python-multipart rejected the body
        raise InvalidRequest(f"invalid multipart body: {exc.detail}", code="invalid_form") from None


async def _transcribe_form(media: MediaService, form: FormData) -> Response:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("an audio file is required", param="file", code="missing_file")
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        params = TranscriptionForm.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = str(first["loc"][0])
        raise InvalidRequest(
            f"{param}: {first['msg']}", param=param, code="invalid_value"
        ) from None
    if params.stream:
        raise InvalidRequest("streaming transcription is not supported", param="stream")
    try:
        transcript = await media.transcribe(
            upload.file,
            language=params.language,
            prompt=params.prompt,
            temperature=params.temperature,
        )
    except MediaError as exc:
        exc.param = exc.param or "file"
        raise
    return FORMATS[params.response_format](transcript)


def _bounded_receive(receive: Receive, limit: int, media: MediaService) -> Receive:
    """`receive` that raises `MediaTooLarge` once the body passes `limit` bytes, so a chunked
    upload without Content-Length is stopped as it streams, not after."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _upload_too_large(media)
        return message

    return bounded


def _upload_too_large(media: MediaService) -> MediaTooLarge:
    limit = media.settings.max_audio_bytes
    return MediaTooLarge(
        f"the upload is larger than the audio limit of {limit / 1024 / 1024:.1f} MiB"
        " (media.max_audio_bytes)",
        param="file",
    )


def _json(transcript: Transcript) -> Response:
    usage = {"type": "duration", "seconds": round(transcript.duration_s, 3)}
    return JSONResponse({"text": transcript.text, "usage": usage})


def _text(transcript: Transcript) -> Response:
    return PlainTextResponse(transcript.text)


def _verbose_json(transcript: Transcript) -> Response:
    segments = [
        {
            "id": segment.id,
            "seek": 0,
            "start": segment.start,
            "end": segment.end,
            "text": segment.text,
            "tokens": segment.tokens,
            "temperature": segment.temperature,
            "avg_logprob": segment.avg_logprob,
            "compression_ratio": segment.compression_ratio,
            "no_speech_prob": segment.no_speech_prob,
        }
        for segment in transcript.segments
    ]
    return JSONResponse(
        {
            "task": "transcribe",
            "language": transcript.language,
            "duration": transcript.duration_s,
            "text": transcript.text,
            "segments": segments,
        }
    )


def _srt(transcript: Transcript) -> Response:
    blocks = [
        f"{n}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text}\n"
        for n, s in enumerate(transcript.segments, start=1)
    ]
    return PlainTextResponse("\n".join(blocks))


def _vtt(transcript: Transcript) -> Response:
    cues = [
        f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text}\n" for s in transcript.segments
    ]
    return PlainTextResponse("WEBVTT\n\n" + "\n".join(cues), media_type="text/vtt")


def _stamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


FORMATS: dict[str, Callable[[Transcript], Response]] = {
    "json": _json,
    "text": _text,
    "verbose_json": _verbose_json,
    "srt": _srt,
    "vtt": _vtt,
}
