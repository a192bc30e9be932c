"""read_file: the text of a project file, or a range of its lines, bounded in size."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from breakingwind.errors import ToolInputRejected
from breakingwind.tools.registry import PathArgument, ToolContext

_SNIFF_BYTES = 8192


class ReadFileResult(BaseModel):
    path: str = Field(description="The file, relative to the project root.")
    content: str = Field(description="The requested lines, newlines included.")
    start_line: int = Field(description="First line returned (1-based).")
    end_line: int = Field(description="Last line returned (0 when the file is empty).")
    total_lines: int = Field(description="Lines in the whole file.")
    size_bytes: int = Field(description="Size of the whole file.")
    truncated: bool = Field(description="True when the size bound cut the range short.")
    next_start_line: int | None = Field(
        None, description="Where to continue when truncated (pass it as start_line)."
    )


def read_file(
    ctx: ToolContext,
    path: Annotated[
        Path, PathArgument(kind="file"), Field(description="File path, relative to the project.")
    ],
    start_line: Annotated[int, Field(ge=1, description="First line to return (1-based).")] = 1,
    end_line: Annotated[
        int | None, Field(ge=1, description="Last line to return, inclusive (default: the end).")
    ] = None,
) -> ReadFileResult:
    """Read a UTF-8 text file of the project, whole or a line range.

    Binary files are refused. At most `tools.read_max_bytes` are returned per call; when the
    range is longer, the result is cut at a line boundary, `truncated` is true and
    `next_start_line` says where to continue.
    """
    if end_line is not None and end_line < start_line:
        raise ToolInputRejected(f"end_line {end_line} is before start_line {start_line}")
    size = path.stat().st_size
    with path.open("rb") as handle:
        if b"\x00" in handle.read(_SNIFF_BYTES):
            raise ToolInputRejected(f"{ctx.sandbox.relative(path)} is a binary file")
    budget = ctx.settings.read_max_bytes
    lines: list[str] = []
    used = 0
    total = 0
    truncated = False
    next_start: int | None = None
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            total = number
            if number < start_line or (end_line is not None and number > end_line):
                continue
            if truncated:
                continue
            text = _decode(raw, ctx.sandbox.relative(path), number)
            if used + len(raw) > budget:
                # Cut at a line boundary; only a first line longer than the budget is split.
                truncated, next_start = True, number
                if not lines:
                    lines.append(text[:budget])
                    next_start = number + 1
                continue
            lines.append(text)
            used += len(raw)
    if start_line > max(total, 1):
        raise ToolInputRejected(f"start_line {start_line} is past the end ({total} lines)")
    return ReadFileResult(
        path=ctx.sandbox.relative(path),
        content="".join(lines),
        start_line=start_line,
        end_line=start_line + len(lines) - 1 if lines else 0,
        total_lines=total,
        size_bytes=size,
        truncated=truncated,
        next_start_line=next_start if next_start is not None and next_start <= total else None,
    )


def _decode(raw: bytes, relative: str, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolInputRejected(
            f"{relative} is not UTF-8 text (line {number}); binary files are refused"
        ) from None
