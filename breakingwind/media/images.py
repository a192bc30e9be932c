"""Images in, a clean RGB picture out: format sniffing and size limits from the header (before any
pixel is decoded), EXIF rotation, alpha flattened onto white.

Synchronous; runs on worker threads (see `MediaService`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from breakingwind.config import MediaSettings
from breakingwind.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from breakingwind.media.source import MediaSource, checked_size, opened, read_head

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
# (offset, bytes) -> format, for telling "a broken image" from "not an image at all".
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (8, b"WEBP", "WEBP"),
    (0, b"GIF8", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
)


@dataclass(frozen=True)
class NormalisedImage:
    image: Image.Image  # RGB, upright, fully decoded
    format: str  # what the file was: PNG, JPEG, ...
    width: int
    height: int

    def png_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()


def normalise_image(source: MediaSource, settings: MediaSettings) -> NormalisedImage:
    """Decode an image the safe way: size, format and declared pixel count are checked from the
    header first, so a 20000x20000 picture or a decompression bomb is refused without decoding."""
    checked_size(source, settings.max_image_bytes, "image")
    with opened(source) as handle, warnings.catch_warnings():
        # Our own pixel limit is checked below; Pillow's bomb warning would only repeat it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(handle, formats=IMAGE_FORMATS)
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise _unreadable(read_head(source)) from None
        except Image.DecompressionBombError as exc:
            raise MediaTooLarge(
                f"the image declares far too many pixels ({exc}); the limit is"
                f" {settings.max_image_pixels:,} (media.max_image_pixels)"
            ) from None
        width, height = image.size
        if width * height > settings.max_image_pixels:
            raise MediaTooLarge(
                f"the image declares {width}x{height} = {width * height:,} pixels; the limit is"
                f" {settings.max_image_pixels:,} (media.max_image_pixels)"
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptMedia(f"the {image.format} image is truncated or corrupt: {exc}") from None
        picture = _flatten_alpha(ImageOps.exif_transpose(image))
    return NormalisedImage(picture, image.format or "", picture.width, picture.height)


def _unreadable(head: bytes) -> CorruptMedia | UnsupportedMedia:
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return CorruptMedia(f"the {name} image is truncated or corrupt (unreadable header)")
    return UnsupportedMedia(
        f"the file is not an image we read; send {', '.join(IMAGE_FORMATS).lower()}"
    )


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """RGB on a white background: transparent screenshot regions would otherwise turn black."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")
