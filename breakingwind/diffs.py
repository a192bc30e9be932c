"""Apply model-written unified diffs, tolerating wrong hunk line numbers.

Models get line numbers wrong far more often than content, so each hunk is located by its content
(context + removed lines): first at the stated line, then at the nearest match anywhere in the
file, then ignoring trailing whitespace. A hunk that matches nowhere is a `DiffError` that says
which hunk, what it expected and where the closest text was — written for the model to fix.
Nothing is written unless every hunk of every file applies. Paths go through the project sandbox:
no `..`, no absolute paths, no symlink escapes, nothing inside `.git/`.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from breakingwind.errors import DiffError, SandboxViolation, ToolInputRejected
from breakingwind.tools.sandbox import Sandbox

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_BARE_HUNK = re.compile(r"^@@.*@@")


@dataclass
class Hunk:
    old_start: int | None  # None when the model wrote a header without numbers
    lines: list[str] = field(default_factory=list)  # ' ', '-', '+' prefixed

    @property
    def before(self) -> list[str]:
        return [line[1:] for line in self.lines if line[:1] in (" ", "-")]

    @property
    def after(self) -> list[str]:
        return [line[1:] for line in self.lines if line[:1] in (" ", "+")]


@dataclass
class FilePatch:
    old_path: str | None  # None: a new file
    new_path: str | None  # None: a deleted file
    hunks: list[Hunk]

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


@dataclass(frozen=True)
class AppliedDiff:
    files: list[str]  # project-relative paths written or deleted
    fuzzy_hunks: int  # hunks found away from their stated line


def parse_unified_diff(text: str, default_path: str | None = None) -> list[FilePatch]:
    """Parse one or more file diffs; `default_path` names the file when headers are missing."""
    patches: list[FilePatch] = []
    current: FilePatch | None = None
    hunk: Hunk | None = None
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            current = FilePatch(_header_path(line[4:]), _header_path(lines[i + 1][4:]), [])
            patches.append(current)
            hunk = None
            i += 2
            continue
        if _BARE_HUNK.match(line):
            if current is None:
                if default_path is None:
                    raise DiffError("the diff has a hunk before any '--- a/file' / '+++ b/file'")
                current = FilePatch(default_path, default_path, [])
                patches.append(current)
            match = _HUNK.match(line)
            hunk = Hunk(int(match.group(1)) if match else None)
            current.hunks.append(hunk)
        elif hunk is not None and line[:1] in (" ", "-", "+"):
            hunk.lines.append(line)
        elif hunk is not None and line == "" and i + 1 < len(lines):
            hunk.lines.append(" ")  # a context line whose single space was stripped
        i += 1
    if not patches:
        raise DiffError("no file diff found (expected '--- a/path', '+++ b/path', '@@ ... @@')")
    for patch in patches:
        if not patch.hunks:
            raise DiffError(f"{patch.path}: the diff has no hunks")
        for hunk in patch.hunks:
            while hunk.lines and hunk.lines[-1] == " ":
                hunk.lines.pop()  # trailing blank lines of the text, not context
    return patches


def apply_file_changes(sandbox: Sandbox, changes: list[tuple[str, str]]) -> AppliedDiff:
    """Apply one diff per (path, diff) pair — the coder's output — all or none."""
    patches = []
    for path, text in changes:
        try:
            patches += parse_unified_diff(text, default_path=path)
        except DiffError as exc:
            raise DiffError(f"{path}: {exc}") from None
    return apply_patches(sandbox, patches)


def apply_patches(sandbox: Sandbox, patches: list[FilePatch]) -> AppliedDiff:
    results: dict[Path, str | None] = {}
    fuzzy = 0
    for patch in patches:
        target = _resolve(sandbox, patch)
        if patch.old_path is None:  # new file
            if target.exists() and target.read_text(errors="replace").strip():
                raise DiffError(f"{patch.path}: the diff creates the file, but it already exists")
            results[target] = _join([line for h in patch.hunks for line in h.after])
            continue
        if target in results:
            original = (results[target] or "").split("\n")
        else:
            if not target.is_file():
                raise DiffError(
                    f"{patch.path}: the file does not exist (use --- /dev/null for a new file)"
                )
            original = target.read_text(errors="replace").split("\n")
        if patch.new_path is None:
            results[target] = None
            continue
        content, moved = _apply_hunks(patch, original)
        fuzzy += moved
        results[target] = content
    _write_all(results)
    return AppliedDiff([sandbox.relative(path) for path in results], fuzzy)


def _resolve(sandbox: Sandbox, patch: FilePatch) -> Path:
    path = patch.path
    if not path:
        raise DiffError("a file diff names no path")
    parts = Path(path).parts
    if ".git" in parts:
        raise DiffError(f"{path}: changes inside .git/ are refused")
    try:
        return sandbox.resolve_inside_project(path, argument="diff path", must_exist=False)
    except SandboxViolation as exc:
        raise DiffError(f"{path}: refused ({exc.rule}): {exc}") from None
    except ToolInputRejected as exc:
        raise DiffError(f"{path}: {exc}") from None


def _apply_hunks(patch: FilePatch, lines: list[str]) -> tuple[str, int]:
    offset = 0
    moved = 0
    for number, hunk in enumerate(patch.hunks, 1):
        before = hunk.before
        expected = (hunk.old_start - 1 + offset) if hunk.old_start else 0
        at = _find(lines, before, expected)
        if at is None:
            raise DiffError(_mismatch(patch.path, number, hunk, lines, expected))
        if hunk.old_start and at != max(expected, 0):
            moved += 1
        lines[at : at + len(before)] = hunk.after
        offset += len(hunk.after) - len(before)
    return "\n".join(lines), moved


def _find(lines: list[str], block: list[str], expected: int) -> int | None:
    """The start of `block` in `lines` nearest to `expected`, exact first, then loose."""
    if not block:
        return min(max(expected, 0), len(lines))
    for same in (lambda a, b: a == b, lambda a, b: a.rstrip() == b.rstrip()):
        starts = [
            i
            for i in range(len(lines) - len(block) + 1)
            if all(same(lines[i + k], block[k]) for k in range(len(block)))
        ]
        if starts:
            return min(starts, key=lambda i: abs(i - expected))
    return None


def _mismatch(path: str, number: int, hunk: Hunk, lines: list[str], expected: int) -> str:
    before = hunk.before
    best, best_ratio = 0, 0.0
    for i in range(max(1, len(lines) - len(before) + 1)):
        ratio = SequenceMatcher(
            None, "\n".join(lines[i : i + len(before)]), "\n".join(before)
        ).ratio()
        if ratio > best_ratio:
            best, best_ratio = i, ratio
    stated = f"line {hunk.old_start}" if hunk.old_start else "no line number"
    found = "\n".join(lines[best : best + len(before)])
    return (
        f"{path}: hunk {number} ({stated}) does not match the file. The hunk expects these"
        f" lines (context and removed):\n{_show(before)}\nThe closest text in the file is at"
        f" line {best + 1}:\n{_show(found.split(chr(10)))}\nCopy context lines exactly from the"
        " current file."
    )


def _show(lines: list[str]) -> str:
    return "\n".join(f"    |{line}" for line in lines[:12])


def _header_path(raw: str) -> str | None:
    path = raw.split("\t", 1)[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + ("\n" if lines and lines[-1] != "" else "")


def _write_all(results: dict[Path, str | None]) -> None:
    """Write each file through a temporary file and a rename, after every hunk applied."""
    for path, content in results.items():
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".bw-", suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            out.write(content)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
