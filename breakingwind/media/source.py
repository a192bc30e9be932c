"""What callers may hand the media functions, and how its size and first bytes are read cheaply."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from breakingwind.errors import CorruptMedia, MediaPathRefused, MediaTooLarge

MediaSource = bytes | Path | BinaryIO
"""Bytes in memory, a local file, or an open binary file (for example an upload's spool file)."""

HEAD_BYTES = 4096


@contextmanager
def opened(source: MediaSource) -> Iterator[BinaryIO]:
    """The source as a binary file positioned at the start; closes only what it opened."""
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    elif isinstance(source, Path):
        try:
            handle = source.open("rb")
        except FileNotFoundError:
            raise MediaPathRefused(f"no such file: {source}") from None
        except IsADirectoryError:
            raise MediaPathRefused(f"{source} is a folder, not a file") from None
        with handle:
            yield handle
    else:
        source.seek(0)
        yield source


def checked_size(source: MediaSource, limit: int, kind: str) -> int:
    """The source's size in bytes; empty or over `limit` is refused before anything is decoded."""
    if isinstance(source, bytes):
        size = len(source)
    elif isinstance(source, Path):
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise MediaPathRefused(f"no such file: {source}") from None
    else:
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
    if size == 0:
        raise CorruptMedia(f"the {kind} file is empty (0 bytes)")
    if size > limit:
        raise MediaTooLarge(
            f"the {kind} file is {_mib(size)}; the limit is {_mib(limit)} (media.max_{kind}_bytes)"
        )
    return size


def read_head(source: MediaSource) -> bytes:
    """The first few KiB, enough for every format signature and a WAV header."""
    with opened(source) as handle:
        return handle.read(HEAD_BYTES)


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"
