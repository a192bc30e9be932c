"""Content parts (text, image_url, input_audio): the one model every door parses them with, and
the one conversion to text (`content_text`) that chat messages and tasks go through.

Images come from data URLs or files inside the project root; remote URLs are never fetched.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from breakingwind.errors import (
    CorruptMedia,
    MediaError,
    MediaPathRefused,
    MediaTooLarge,
    UnsupportedMedia,
)
from breakingwind.media.audio import AUDIO_FORMATS, Transcript
from breakingwind.media.ocr import ImageText
from breakingwind.prompts import render_prompt

if TYPE_CHECKING:
    from breakingwind.media.service import MediaService


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send extra fields; they mean nothing here


class TextPart(_Part):
    type: Literal["text"]
    text: str


class ImageUrl(_Part):
    url: str = Field(min_length=1)
    detail: str | None = None


class ImageUrlPart(_Part):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Part):
    data: str = Field(min_length=1, description="base64-encoded audio")
    format: str = Field(min_length=1, description="wav, mp3, m4a, ogg, webm or flac")


class InputAudioPart(_Part):
    type: Literal["input_audio"]
    input_audio: InputAudio


ContentPart = Annotated[TextPart | ImageUrlPart | InputAudioPart, Field(discriminator="type")]
_PART = TypeAdapter(ContentPart)
PART_TYPES = ("text", "image_url", "input_audio")


@dataclass(frozen=True)
class PreprocessorInput:
    """Everything a request said, as text: what was typed, what was said, what pictures show."""

    typed_text: str
    transcripts: list[Transcript]
    images: list[ImageText]

    @property
    def has_media(self) -> bool:
        return bool(self.transcripts or self.images)

    def render(self) -> str:
        """The pieces under clear headings, each exactly as received (what the preprocessor
        reads). Text that is already rendered material (a task whose media were read when it
        was submitted) is returned as it is: material is rendered once."""
        heading = render_prompt("preprocessor_sources.md", typed="", transcripts=[], images=[])
        if not self.has_media and self.typed_text.startswith(heading):
            return self.typed_text.strip()
        return render_prompt(
            "preprocessor_sources.md",
            typed=self.typed_text.strip(),
            transcripts=[transcript.text for transcript in self.transcripts],
            images=self.images,
        )


async def content_text(
    media: MediaService, content: str | Sequence[Any], project_root: Path, param: str
) -> str:
    """Message or task content as text: text parts joined as they are; with images or audio,
    every part read (OCR, transcription) and rendered under headings. A bad part raises a
    `MediaError` whose `param` is `{param}.content[i]`-style, starting with `param`."""
    if isinstance(content, str):
        return content
    if _all_text(content):
        return "".join(_parse_part(raw).text for raw in content)  # type: ignore[union-attr]
    try:
        material = await parts_to_text(media, content, project_root)
    except MediaError as exc:
        exc.param = f"{param}.{exc.param}" if exc.param else param
        raise
    return material.render()


def _all_text(content: Sequence[Any]) -> bool:
    kinds = (p.type if isinstance(p, _Part) else p.get("type") for p in content)
    return all(kind == "text" for kind in kinds)


async def parts_to_text(
    media: MediaService, content: str | Sequence[Any], project_root: Path
) -> PreprocessorInput:
    """Transcribe and OCR every part, in order. A bad part raises a `MediaError` whose `param`
    is `content[i]` and whose message starts with it."""
    if isinstance(content, str):
        return PreprocessorInput(content, [], [])
    typed: list[str] = []
    transcripts: list[Transcript] = []
    images: list[ImageText] = []
    for index, raw in enumerate(content):
        param = f"content[{index}]"
        try:
            part = _parse_part(raw)
            if isinstance(part, TextPart):
                typed.append(part.text)
            elif isinstance(part, ImageUrlPart):
                limit = media.settings.max_image_bytes
                images.append(
                    await media.read_image(image_source(part.image_url.url, project_root, limit))
                )
            else:
                transcripts.append(await media.transcribe(audio_bytes(part.input_audio, media)))
        except MediaError as exc:
            raise type(exc)(f"{param}: {exc}", param=param) from None
    return PreprocessorInput("\n\n".join(typed), transcripts, images)


def image_source(url: str, project_root: Path, max_bytes: int) -> bytes | Path:
    """The bytes of a data URL, or a file path checked to lie inside the project root."""
    scheme = urlparse(url).scheme.lower()
    if scheme == "data":
        return _data_url_bytes(url, max_bytes)
    if scheme in ("http", "https", "ftp"):
        raise UnsupportedMedia(
            "remote image URLs are never fetched; send a data: URL or a path inside the project"
        )
    if scheme == "file":
        return inside_project(Path(unquote(urlparse(url).path)), project_root)
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise UnsupportedMedia(f"unsupported image URL scheme {scheme!r}")
    return inside_project(Path(url), project_root)


def inside_project(path: Path, project_root: Path) -> Path:
    """`path` (relative ones are relative to the root), resolved through symlinks, if it is a file
    inside the project root."""
    root = project_root.resolve()
    resolved = (root / path.expanduser()).resolve()
    if not resolved.is_relative_to(root):
        raise MediaPathRefused(f"{path} is outside the project root {root}")
    if not resolved.is_file():
        raise MediaPathRefused(f"no such file in the project: {path}")
    return resolved


def audio_bytes(audio: InputAudio, media: MediaService) -> bytes:
    if audio.format.lower() not in AUDIO_FORMATS.split(", "):
        raise UnsupportedMedia(f"audio format {audio.format!r} is not one of {AUDIO_FORMATS}")
    return _base64_bytes(audio.data, media.settings.max_audio_bytes, "audio")


def _parse_part(raw: Any) -> TextPart | ImageUrlPart | InputAudioPart:
    if isinstance(raw, TextPart | ImageUrlPart | InputAudioPart):
        return raw
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in PART_TYPES:
        raise UnsupportedMedia(
            f"content part type {kind!r} is not supported; use {', '.join(PART_TYPES)}"
        )
    try:
        return _PART.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        raise UnsupportedMedia(f"{kind} part: {where}: {first['msg']}") from None


def _data_url_bytes(url: str, max_bytes: int) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise UnsupportedMedia("a data: URL must be base64 (data:image/png;base64,...)")
    return _base64_bytes(payload, max_bytes, "image")


def _base64_bytes(payload: str, max_bytes: int, kind: str) -> bytes:
    """Decode base64, refusing from its length alone when the result would be over `max_bytes`."""
    if len(payload) * 3 // 4 > max_bytes + 2:
        raise MediaTooLarge(
            f"the {kind} is about {len(payload) * 3 // 4:,} bytes; the limit is {max_bytes:,}"
            f" (media.max_{kind}_bytes)"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise CorruptMedia(f"the {kind} data is not valid base64") from None
    if not data:
        raise CorruptMedia(f"the {kind} data is empty")
    return data
