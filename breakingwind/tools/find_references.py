"""find_references: where a symbol is defined and used.

Python goes through jedi, so imports, aliases and attribute access resolve to the definition
they name (`exact: true`). Other languages get a word-boundary scan of the project's source files,
marked `exact: false` (a same-named local in another scope is reported too).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Annotated, Literal

import jedi
from pydantic import BaseModel, Field

from breakingwind.errors import ToolInputRejected
from breakingwind.tools.files import ProjectFile, project_files
from breakingwind.tools.outline import language_of
from breakingwind.tools.registry import PathArgument, ToolContext

_SCANNED = {"javascript", "typescript", "tsx", "go", "rust", "c", "cpp", "java", "kotlin", "ruby",
            "php", "csharp", "swift", "shell"}  # fmt: skip
_DEFINITION = r"(def|class|function|func|fn|struct|enum|trait|interface|type|const|let|var)\s+"
_MAX_DEFINITIONS = 20
_IMPORT_LINE = re.compile(r"^\s*(from|import)\s")


class Location(BaseModel):
    path: str
    line: int
    column: int = Field(description="0-based column of the name.")
    code: str = Field(description="The line, stripped.")
    is_definition: bool
    method: Literal["jedi", "word-boundary"]
    exact: bool = Field(description="False for word-boundary matches (textual, not resolved).")


class FindReferencesResult(BaseModel):
    symbol: str
    definitions: list[Location]
    references: list[Location]
    truncated: bool


class JediLock:
    """jedi keeps caches that are not safe to share between threads: one call at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def find_references(
    ctx: ToolContext,
    symbol: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            pattern=r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$",
            description="Name to look up; dotted (`pkg.mod.Class.method`) narrows Python matches.",
        ),
    ],
    path: Annotated[
        Path | None,
        PathArgument(kind="file"),
        Field(description="A file where the symbol occurs, to pin one Python definition."),
    ] = None,
    line: Annotated[
        int | None, Field(ge=1, description="Line of the occurrence in `path` (1-based).")
    ] = None,
    max_results: Annotated[int, Field(ge=1, le=2000, description="Most locations returned.")] = 200,
) -> FindReferencesResult:
    """Find the definitions of a symbol and every reference to it in the project.

    Python is resolved with jedi (imports and attribute access follow the definition); other
    languages (JavaScript/TypeScript, Go, Rust...) are matched on word boundaries and marked
    `exact: false`.
    """
    if line is not None and path is None:
        raise ToolInputRejected("line needs path")
    name = symbol.rsplit(".", 1)[-1]
    files = list(project_files(ctx.sandbox, ctx.sandbox.root))
    python_files = {f.relative for f in files if f.relative.endswith((".py", ".pyi"))}
    with ctx.shared(JediLock, JediLock).lock:
        found = _python_locations(ctx, symbol, path, line, python_files)
    others = [f for f in files if (language_of(f.relative.rsplit("/", 1)[-1]) or "") in _SCANNED]
    found.extend(_scan(name, others, ctx.settings.max_file_bytes))
    found.sort(key=lambda loc: (not loc.is_definition, loc.path, loc.line, loc.column))
    unique = list({(loc.path, loc.line, loc.column): loc for loc in found}.values())
    kept = unique[:max_results]
    return FindReferencesResult(
        symbol=symbol,
        definitions=[loc for loc in kept if loc.is_definition],
        references=[loc for loc in kept if not loc.is_definition],
        truncated=len(unique) > max_results,
    )


def _python_locations(
    ctx: ToolContext, symbol: str, path: Path | None, line: int | None, files: set[str]
) -> list[Location]:
    project = jedi.Project(ctx.sandbox.root, load_unsafe_extensions=False)
    environment = jedi.InterpreterEnvironment()  # no subprocess, nothing of the project runs
    name = symbol.rsplit(".", 1)[-1]
    anchors: list[tuple[jedi.Script, int, int]] = []
    if path is not None:
        if path.suffix in (".py", ".pyi"):
            script = jedi.Script(path=path, project=project, environment=environment)
            anchors = [(script, ln, col) for ln, col in _occurrences(path, name, line)]
    else:
        for definition in project.search(name, all_scopes=True):
            if len(anchors) >= _MAX_DEFINITIONS:
                break
            if "." in symbol and not (definition.full_name or "").endswith(symbol):
                continue
            if definition.module_path is None or not ctx.sandbox.contains(definition.module_path):
                continue
            script = jedi.Script(
                path=definition.module_path, project=project, environment=environment
            )
            anchors.append((script, definition.line, definition.column))
    locations: list[Location] = []
    for script, line_no, column in anchors:
        for ref in script.get_references(line_no, column, scope="project"):
            location = _jedi_location(ctx, ref, files)
            if location is not None:
                locations.append(location)
    return locations


def _occurrences(path: Path, name: str, line: int | None) -> list[tuple[int, int]]:
    """(line, column) of `name` in `path`: on the given line, else its first occurrence."""
    pattern = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if line is not None and number != line:
            continue
        match = pattern.search(text)
        if match:
            return [(number, match.start())]
    raise ToolInputRejected(f"{name!r} does not occur" + (f" on line {line}" if line else ""))


def _jedi_location(
    ctx: ToolContext, ref: jedi.api.classes.Name, files: set[str]
) -> Location | None:
    if ref.module_path is None or ref.line is None or not ctx.sandbox.contains(ref.module_path):
        return None
    relative = ctx.sandbox.relative(Path(ref.module_path))
    if relative not in files:  # ignored by .gitignore, or a secrets file
        return None
    return Location(
        path=relative,
        line=ref.line,
        column=ref.column or 0,
        code=ref.get_line_code().strip()[:300],
        # jedi counts `from m import name` as defining `name`; for the caller it is a use.
        is_definition=ref.is_definition() and not _IMPORT_LINE.match(ref.get_line_code()),
        method="jedi",
        exact=True,
    )


def _scan(name: str, files: list[ProjectFile], max_bytes: int) -> list[Location]:
    pattern = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
    definition = re.compile(_DEFINITION + rf"{re.escape(name)}(?![\w$])")
    found = []
    for project_file in files:
        if project_file.size > max_bytes:
            continue
        try:
            text = project_file.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if name not in text:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for match in pattern.finditer(line):
                found.append(
                    Location(
                        path=project_file.relative,
                        line=number,
                        column=match.start(),
                        code=line.strip()[:300],
                        is_definition=bool(definition.search(line)),
                        method="word-boundary",
                        exact=False,
                    )
                )
    return found
