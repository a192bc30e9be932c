"""Media input: speech to text (faster-whisper), screenshots to text (pillow + RapidOCR, and a
vision model when configured), and OpenAI content parts to `PreprocessorInput`."""

from breakingwind.media.audio import Segment, Transcript
from breakingwind.media.ocr import ImageText, OcrLine
from breakingwind.media.parts import ContentPart, PreprocessorInput
from breakingwind.media.service import MediaService
from breakingwind.media.source import MediaSource

__all__ = [
    "ContentPart",
    "ImageText",
    "MediaService",
    "MediaSource",
    "OcrLine",
    "PreprocessorInput",
    "Segment",
    "Transcript",
]
