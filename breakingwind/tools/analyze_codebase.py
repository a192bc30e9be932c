"""analyze_codebase: a repo map (languages, symbols, imports, dependency graph, tests, frameworks).

Outlines are cached per registry and keyed by (mtime, size): a second call re-reads only the
files that changed, so it costs one directory walk.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field

from breakingwind.tools.files import ProjectFile, project_files
from breakingwind.tools.frameworks import Framework, detect_frameworks, ecosystems
from breakingwind.tools.outline import Outline, language_of, outline
from breakingwind.tools.registry import PathArgument, ToolContext

_TEST_FILE = re.compile(
    r"(^|/)(test_[^/]*\.py|[^/]*_test\.(py|go)|conftest\.py|[^/]*\.(test|spec)\.[jt]sx?)$"
)
_TEST_DIR = re.compile(r"(^|/)(tests?|__tests__|spec)/")
ItemT = TypeVar("ItemT", bound=BaseModel)
_JS_SUFFIXES = ("", ".js", ".ts", ".tsx", ".jsx", ".mjs", ".cjs", "/index.js", "/index.ts")


class SymbolInfo(BaseModel):
    name: str
    kind: str = Field(description="class, function, method, interface, struct, enum, trait...")
    line: int
    end_line: int
    signature: str
    parent: str | None = Field(None, description="Enclosing class/impl/struct, for methods.")
    doc: str | None = Field(None, description="First line of the docstring (Python).")


class ModuleInfo(BaseModel):
    path: str
    language: str
    size_bytes: int
    lines: int
    is_test: bool
    doc: str | None = None
    imports: list[str]
    symbols: list[SymbolInfo]
    parse_error: str | None = None


class LanguageStats(BaseModel):
    language: str
    files: int
    bytes: int


class DependencyEdge(BaseModel):
    source: str = Field(description="The importing file.")
    target: str = Field(description="The imported project file (or package folder, for Go).")


class CacheStats(BaseModel):
    parsed: int = Field(description="Files read and outlined by this call.")
    reused: int = Field(description="Files whose cached outline was still valid.")


class AnalyzeCodebaseResult(BaseModel):
    path: str
    files_total: int
    languages: list[LanguageStats]
    ecosystems: list[str]
    frameworks: list[Framework]
    test_locations: list[str] = Field(description="Folders holding test files, with counts.")
    test_files: int
    modules_total: int
    modules: list[ModuleInfo] = Field(description="Outlined source files (bounded).")
    modules_offset: int = Field(description="Index of the first module listed.")
    modules_truncated: bool = Field(description="Some modules are not in this result.")
    next_modules_offset: int | None = Field(
        description="Pass as `modules_offset` for the next page; null after the last module."
    )
    dependency_graph: list[DependencyEdge] = Field(description="Imports between project files.")
    dependency_graph_truncated: bool
    external_imports: dict[str, list[str]] = Field(
        description="Per language, imported names outside the project (most used first)."
    )
    cache: CacheStats
    elapsed_ms: int


class _Entry:
    __slots__ = ("key", "language", "lines", "outline")

    def __init__(self, key: tuple[int, int], language: str, lines: int, found: Outline | None):
        self.key, self.language, self.lines, self.outline = key, language, lines, found


class RepoMapCache:
    """Outlines by relative path, valid while the file's (mtime_ns, size) is unchanged."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.lock = threading.Lock()


def analyze_codebase(
    ctx: ToolContext,
    path: Annotated[
        Path, PathArgument(kind="dir"), Field(description="Folder to map (default: the root).")
    ] = Path("."),
    include_symbols: Annotated[
        bool, Field(description="List each module's classes/functions with signatures.")
    ] = True,
    max_modules: Annotated[
        int, Field(ge=1, le=5000, description="Most modules listed in `modules`.")
    ] = 300,
    modules_offset: Annotated[
        int,
        Field(
            ge=0,
            description="List modules from this index on (pass the last result's"
            " `next_modules_offset` to page through a large project).",
        ),
    ] = 0,
    max_edges: Annotated[
        int, Field(ge=0, le=20000, description="Most dependency-graph edges returned.")
    ] = 2000,
) -> AnalyzeCodebaseResult:
    """Map the project: files by language and size, per module its classes and functions
    (signatures, line numbers), imports, the dependency graph between project files, where the
    tests are, and the frameworks in use. Python is read in depth; JavaScript, TypeScript, Go and
    Rust at the symbol level. Respects .gitignore; secrets files are left out. A large project's
    modules come in pages that fit the result bound: call again with `next_modules_offset`.
    """
    started = time.perf_counter()
    cache = ctx.shared(RepoMapCache, RepoMapCache)
    files = list(project_files(ctx.sandbox, path))
    with cache.lock:
        stats = _refresh(cache, files, ctx.settings.max_file_bytes)
        entries = {f.relative: cache.entries[f.relative] for f in files}
    languages: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for found in files:
        language = entries[found.relative].language
        languages[language] += 1
        sizes[language] += found.size
    outlined = [f for f in files if entries[f.relative].outline is not None]
    modules = [_module_info(f, entries[f.relative], include_symbols) for f in outlined]
    edges, external = _dependency_graph(ctx.sandbox.root, modules)
    tests = [m.path for m in modules if m.is_test]
    # The modules that fit in half the output bound, the graph in a quarter (the rest is small),
    # so every result fits every door (an MCP client refuses a message over 1 MiB).
    bound = ctx.settings.max_output_bytes
    listed = _fitting(modules[modules_offset : modules_offset + max_modules], bound // 2)
    graph = _fitting(edges[:max_edges], bound // 4)
    next_offset = modules_offset + len(listed)
    return AnalyzeCodebaseResult(
        path=ctx.sandbox.relative(path),
        files_total=len(files),
        languages=[
            LanguageStats(language=name, files=count, bytes=sizes[name])
            for name, count in languages.most_common()
        ],
        ecosystems=ecosystems(ctx.sandbox.root),
        frameworks=detect_frameworks(
            ctx.sandbox.root, (i for m in modules if m.language == "python" for i in m.imports)
        ),
        test_locations=_test_locations(tests),
        test_files=len(tests),
        modules_total=len(modules),
        modules=listed,
        modules_offset=modules_offset,
        modules_truncated=len(listed) < len(modules),
        next_modules_offset=next_offset if next_offset < len(modules) else None,
        dependency_graph=graph,
        dependency_graph_truncated=len(graph) < len(edges),
        external_imports={k: v[:100] for k, v in external.items()},
        cache=stats,
        elapsed_ms=int((time.perf_counter() - started) * 1000),
    )


def _refresh(cache: RepoMapCache, files: list[ProjectFile], max_bytes: int) -> CacheStats:
    parsed = reused = 0
    for found in files:
        key = (found.mtime_ns, found.size)
        entry = cache.entries.get(found.relative)
        if entry is not None and entry.key == key:
            reused += 1
            continue
        parsed += 1
        language = language_of(found.relative.rsplit("/", 1)[-1]) or "other"
        source = b""
        if found.size <= max_bytes:
            try:
                source = found.path.read_bytes()
            except OSError:
                source = b""
        lines = source.count(b"\n") + (1 if source and not source.endswith(b"\n") else 0)
        skipped = found.size > max_bytes or b"\x00" in source[:8192]
        result = None if skipped else outline(language, source)
        cache.entries[found.relative] = _Entry(key, language, lines, result)
    return CacheStats(parsed=parsed, reused=reused)


def _module_info(found: ProjectFile, entry: _Entry, include_symbols: bool) -> ModuleInfo:
    assert entry.outline is not None
    source_is_test = entry.language == "rust" and any(
        s.name == "tests" and s.kind == "module" for s in entry.outline.symbols
    )
    return ModuleInfo(
        path=found.relative,
        language=entry.language,
        size_bytes=found.size,
        lines=entry.lines,
        is_test=bool(_TEST_FILE.search(found.relative) or _TEST_DIR.search(found.relative))
        or source_is_test,
        doc=entry.outline.doc,
        imports=list(dict.fromkeys(entry.outline.imports)),
        symbols=[SymbolInfo(**vars(s)) for s in entry.outline.symbols] if include_symbols else [],
        parse_error=entry.outline.error,
    )


def _fitting(items: list[ItemT], budget: int) -> list[ItemT]:
    """The longest head of `items` whose JSON fits in `budget` bytes."""
    used = 0
    for count, item in enumerate(items):
        used += len(item.model_dump_json()) + 1
        if used > budget:
            return items[:count]
    return items


def _test_locations(tests: list[str]) -> list[str]:
    folders = Counter(str(PurePosixPath(t).parent) for t in tests)
    return [f"{folder} ({count} files)" for folder, count in sorted(folders.items())]


def _dependency_graph(
    root: Path, modules: list[ModuleInfo]
) -> tuple[list[DependencyEdge], dict[str, list[str]]]:
    """Edges between project files, and the imports that point outside the project."""
    paths = {m.path for m in modules}
    index = _Index(paths, _python_module_names(paths), _go_module_path(root))
    edges: list[DependencyEdge] = []
    external: dict[str, Counter[str]] = {}
    for module in modules:
        for name in module.imports:
            target = _RESOLVERS.get(module.language, _no_resolution)(module.path, name, index)
            if target is not None and target != module.path:
                edges.append(DependencyEdge(source=module.path, target=target))
            elif target is None:
                external.setdefault(module.language, Counter())[name.split("::")[0]] += 1
    unique = list({(e.source, e.target): e for e in edges}.values())
    return unique, {k: [n for n, _ in v.most_common()] for k, v in sorted(external.items())}


@dataclass(frozen=True)
class _Index:
    """What import resolution looks things up in."""

    paths: set[str]
    python_modules: dict[str, str]
    go_module: str | None


def _python_module_names(paths: set[str]) -> dict[str, str]:
    """Dotted module name -> file, from the root and from a `src/`-style top folder."""
    names: dict[str, str] = {}
    for path in sorted(paths):
        if not path.endswith(".py"):
            continue
        parts = path[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        for start in range(min(2, len(parts))):
            dotted = ".".join(parts[start:])
            if dotted:
                names.setdefault(dotted, path)
    return names


def _resolve_python(source: str, name: str, index: _Index) -> str | None:
    if name.startswith("."):
        level = len(name) - len(name.lstrip("."))
        package = source[:-3].split("/")[:-1]
        if source.endswith("__init__.py"):
            package = source.split("/")[:-1]
        base = package[: len(package) - (level - 1)] if level > 1 else package
        name = ".".join([*base, name.lstrip(".")]).strip(".")
        for start in range(2):
            candidate = ".".join(name.split(".")[start:])
            if candidate in index.python_modules:
                return index.python_modules[candidate]
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        target = index.python_modules.get(".".join(parts[:end]))
        if target is not None:
            return target
    return None


def _resolve_js(source: str, name: str, index: _Index) -> str | None:
    if not name.startswith("."):
        return None
    base = os.path.normpath(os.path.join(os.path.dirname(source), name)).replace(os.sep, "/")
    return next((base + s for s in _JS_SUFFIXES if base + s in index.paths), None)


def _resolve_go(source: str, name: str, index: _Index) -> str | None:
    module = index.go_module
    if module is None or not (name == module or name.startswith(module + "/")):
        return None
    folder = name[len(module) :].strip("/")
    prefix = folder + "/" if folder else ""
    has_files = any(p.startswith(prefix) and p.endswith(".go") for p in index.paths)
    return (folder or ".") + "/" if has_files else None


def _resolve_rust(source: str, name: str, index: _Index) -> str | None:
    if not name.startswith(("crate::", "super::", "self::")):
        return None
    segments = name.split("::")
    folder = source.rsplit("/", 1)[0] if "/" in source else ""
    if segments[0] == "crate":
        folder = source.split("/src/")[0] + "/src" if "/src/" in source else "src"
    for end in range(len(segments), 1, -1):
        stem = "/".join([folder, *segments[1:end]]).lstrip("/")
        for candidate in (stem + ".rs", stem + "/mod.rs"):
            if candidate in index.paths:
                return candidate
    return None


def _no_resolution(source: str, name: str, index: _Index) -> str | None:
    return None


_RESOLVERS = {
    "python": _resolve_python,
    "javascript": _resolve_js,
    "typescript": _resolve_js,
    "tsx": _resolve_js,
    "go": _resolve_go,
    "rust": _resolve_rust,
}


def _go_module_path(root: Path) -> str | None:
    try:
        text = (root / "go.mod").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^module\s+(\S+)", text, re.M)
    return match.group(1) if match else None
