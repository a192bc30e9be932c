"""Edits that apply by construction: what the coder may edit, the grammars of each step, and the
unified diff made from a finished edit.

A local model writes an edit in three constrained steps, each with a small grammar built for that
call from the current workspace:

1. the target: one path from the editable files (an enum), or `new <path>` (a path pattern that
   cannot climb out of the project), or `DONE` once at least one edit was made;
2. the line range `START-END` of the target's current text (digits; clamped to the file);
3. the replacement: the range's original lines are forced into the reply (prefilled as the
   beginning of the assistant's answer, in search/replace form) and the model writes only the
   new lines after them.

Whatever the model writes, the result is a replacement of real, current lines of a real file, so
the unified diff made from it (`edit_diff`) always applies. Binary, oversized and secret files are
never offered, and the prompt says why.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from breakingwind.engine.grammars import gbnf_literal
from breakingwind.engine.repetition import LINE_MAX_PERIOD, line_shape
from breakingwind.tools.files import project_files
from breakingwind.tools.sandbox import Sandbox

MAX_TARGETS = 200  # paths offered in one target grammar (relevant files first)
MAX_EDIT_BYTES = 256 * 1024  # larger files are not offered as edit targets
MAX_NEW_PATH_CHARS = 120
SNIFF_BYTES = 8192
DONE = "DONE"
NEW_FILE = "new "
ORIGINAL_MARK = "<<<<<<< ORIGINAL"
DIVIDER = "======="
UPDATED_MARK = ">>>>>>> UPDATED"
_NEW_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


@dataclass(frozen=True)
class EditTargets:
    """The files a coder may edit now, and the ones it may not, with the reason."""

    paths: list[str]
    refused: dict[str, str]  # path -> why it is not offered


@dataclass(frozen=True)
class Edit:
    """Lines `start`..`end` (1-based, inclusive; end = start - 1 inserts) of `path` become `new`."""

    path: str
    start: int
    end: int
    new: list[str]
    created: bool = False  # the file did not exist before this iteration


def edit_targets(sandbox: Sandbox, preferred: list[str]) -> EditTargets:
    """The project's editable text files, `preferred` ones first, at most `MAX_TARGETS`."""
    paths: list[str] = []
    refused: dict[str, str] = {}
    for found in project_files(sandbox, sandbox.root):
        if ".git" in found.relative.split("/"):
            continue  # a worktree's .git file: never a target (the applier refuses it too)
        reason = _not_editable(found.path, found.size)
        if reason:
            refused[found.relative] = reason
        else:
            paths.append(found.relative)
    wanted = [p for p in dict.fromkeys(preferred) if p in set(paths)]
    ordered = wanted + [p for p in paths if p not in set(wanted)]
    for extra in ordered[MAX_TARGETS:]:
        refused[extra] = f"more than {MAX_TARGETS} files; name it in the plan to edit it"
    return EditTargets(ordered[:MAX_TARGETS], refused)


def _not_editable(path: Path, size: int) -> str | None:
    if size > MAX_EDIT_BYTES:
        return f"oversized ({size} bytes; the limit is {MAX_EDIT_BYTES})"
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if b"\x00" in head:
        return "binary"
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None


def target_grammar(paths: list[str], allow_done: bool) -> str:
    """Grammar of step 1: an existing path, `new <path>`, or (after an edit) `DONE`."""
    choices = [gbnf_literal(path) for path in paths]
    choices.append(f"{gbnf_literal(NEW_FILE)} newpath")
    if allow_done:
        choices.append(gbnf_literal(DONE))
    return (
        f"root ::= {' | '.join(choices)}\n"
        'newpath ::= segment ("/" segment)*\n'
        "segment ::= [A-Za-z0-9_] [A-Za-z0-9_.-]*\n"
    )


def range_grammar(n_lines: int) -> str:
    """Grammar of step 2: `START-END`, numbers with at most as many digits as the file needs."""
    optional = " [0-9]?" * (len(str(max(n_lines, 1))) - 1)
    return f'root ::= num "-" num\nnum ::= [1-9]{optional}\n'


def replacement_grammar() -> str:
    """Grammar of step 3: new lines, none of which looks like a marker, then the end marker."""
    starts = []
    ends = []
    for mark in "=<>":
        char = gbnf_literal(mark)
        starts.append(f"{char}{{1,6}} [^{_escape(mark)}\\n]")
        ends.append(f"{char}{{1,6}}")
    return (
        f"root ::= line* {gbnf_literal(UPDATED_MARK)}\n"
        f'line ::= ([^=<>\\n] | {" | ".join(starts)}) [^\\n]* "\\n"'
        f' | ({" | ".join(ends)})? "\\n"\n'
    )


def _escape(char: str) -> str:
    return "\\" + char if char in "^-]\\" else char


def parse_target(text: str) -> str | None:
    """The path chosen in step 1 ("new " paths included), or None for DONE."""
    choice = text.strip()
    if choice == DONE:
        return None
    if choice.startswith(NEW_FILE):
        choice = choice[len(NEW_FILE) :].strip()
    return choice


def valid_new_path(path: str) -> bool:
    return len(path) <= MAX_NEW_PATH_CHARS and bool(_NEW_PATH.match(path))


def parse_range(text: str, n_lines: int) -> tuple[int, int]:
    """Step 2's answer as a range inside the file: numbers clamped, END >= START - 1."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:2]] or [1]
    start = min(max(numbers[0], 1), max(n_lines, 1))
    end = numbers[1] if len(numbers) > 1 else start
    end = min(max(end, start), n_lines)
    return start, end


def numbered(lines: list[str], first: int = 1) -> str:
    """Lines with their numbers, as the model sees a file."""
    width = len(str(first + len(lines)))
    return "\n".join(f"{n:>{width}}| {line}" for n, line in enumerate(lines, first))


def replacement_prefix(path: str, start: int, end: int, original: list[str]) -> str:
    """The forced beginning of step 3's answer: the original lines in search/replace form."""
    body = "".join(f"{line}\n" for line in original)
    return f"{path} lines {start}-{end}\n{ORIGINAL_MARK}\n{body}{DIVIDER}\n"


def parse_replacement(text: str, complete: bool, looped: bool = False) -> list[str]:
    """Step 3's new lines. An unfinished last line (cut by a budget or a loop) is dropped, and
    after a loop so are the repeats of the looping lines (one copy is kept; blocks that differ
    only in their numbers, as a counting loop writes them, count as repeats)."""
    text = text.split(UPDATED_MARK, 1)[0]
    if text.endswith("\n") or complete:
        lines = text.removesuffix("\n").split("\n") if text else []
    else:
        lines = text.split("\n")[:-1]
    return _without_repeated_tail(lines) if looped else lines


def _without_repeated_tail(lines: list[str]) -> list[str]:
    lines = list(lines)
    shapes = [line_shape(line) for line in lines]
    shrunk = True
    while shrunk:
        shrunk = False
        for size in range(1, LINE_MAX_PERIOD + 1):
            if len(lines) >= 2 * size and shapes[-size:] == shapes[-2 * size : -size]:
                del lines[-size:], shapes[-size:]
                shrunk = True
                break
    return lines


def file_lines(text: str) -> list[str]:
    """A file's lines as the diff applier sees them: no line ends, and a last "" element when
    the text ends with a newline (so that state is kept unless an edit changes it)."""
    return text.split("\n")


def count_lines(text: str) -> int:
    """How many lines `text` has (a final newline ends the last line; it starts none)."""
    return len(file_lines(text)) - (1 if text.endswith("\n") or not text else 0)


def apply_edit(text: str, edit: Edit) -> str:
    """`text` with `edit` applied (in memory)."""
    lines = file_lines(text)
    lines[edit.start - 1 : edit.end] = edit.new
    return "\n".join(lines)


def edit_diff(path: str, before: str | None, after: str) -> str:
    """The unified diff that turns `before` (None: a new file) into `after`; "" when equal."""
    if before == after:
        return ""
    # Lines as the applier splits them, so what it rebuilds is exactly `after`.
    old = file_lines(before) if before is not None else []
    lines = difflib.unified_diff(
        old,
        file_lines(after),
        fromfile="/dev/null" if before is None else f"a/{path}",
        tofile=f"b/{path}",
        n=3,
        lineterm="",
    )
    return "\n".join(lines) + "\n"
