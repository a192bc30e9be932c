"""search_docs: ranked full-text search over Markdown/RST docs, docstrings and comments.

The index is an SQLite FTS5 table (BM25 ranking, porter stemming) in the data dir, one file per
project root. Each search first brings the index up to date by file mtime and size: only changed
files are re-read, removed files are dropped.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import sqlite3
import threading
import time
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from breakingwind.errors import ToolInputRejected
from breakingwind.tools.files import ProjectFile, project_files
from breakingwind.tools.outline import language_of, tree_sitter_parse
from breakingwind.tools.registry import PathArgument, ToolContext

ChunkKind = Literal["docs", "docstring", "comment"]
_DOC_LANGUAGES = {"markdown", "rst", "text"}
_CODE_LANGUAGES = {"python", "javascript", "typescript", "tsx", "go", "rust"}
_COMMENT_NODES = {"comment", "line_comment", "block_comment"}
_CHUNK_CHARS = 4000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5(
    path UNINDEXED, kind UNINDEXED, line UNINDEXED, title, body,
    tokenize = 'porter unicode61'
);
"""


class DocHit(BaseModel):
    path: str
    line: int = Field(description="Line where the section, docstring or comment starts.")
    kind: ChunkKind
    title: str = Field(description="Heading, or the documented name, or the comment's start.")
    snippet: str = Field(description="The matching passage, matches in [brackets].")
    score: float = Field(description="BM25 relevance (higher is better).")


class SearchDocsResult(BaseModel):
    query: str
    match: Literal["all_terms", "any_term"] = Field(
        description="all_terms unless no chunk had every term; then chunks with any term."
    )
    results: list[DocHit]
    indexed_files: int
    reindexed_files: int = Field(description="Files (re)read to bring the index up to date.")
    elapsed_ms: int


@dataclass
class _Chunk:
    kind: ChunkKind
    line: int
    title: str
    body: str


class DocsIndex:
    """One FTS5 database per project; every use holds the lock (sqlite3 is used from threads)."""

    def __init__(self, database: Path) -> None:
        database.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.db = sqlite3.connect(database, check_same_thread=False)
        self.db.executescript(_SCHEMA)

    def refresh(self, files: list[ProjectFile], max_bytes: int) -> int:
        """Re-read changed files, drop removed ones; returns how many were re-read."""
        known = {row[0]: (row[1], row[2]) for row in self.db.execute("SELECT * FROM files")}
        current = {f.relative: f for f in files}
        changed = [f for f in files if known.get(f.relative) != (f.mtime_ns, f.size)]
        with self.db:
            for gone in known.keys() - current.keys():
                self._forget(gone)
            for found in changed:
                self._forget(found.relative)
                chunks = _chunks(found, max_bytes)
                self.db.executemany(
                    "INSERT INTO chunks (path, kind, line, title, body) VALUES (?, ?, ?, ?, ?)",
                    [(found.relative, c.kind, c.line, c.title, c.body) for c in chunks],
                )
                self.db.execute(
                    "INSERT INTO files VALUES (?, ?, ?)",
                    (found.relative, found.mtime_ns, found.size),
                )
        return len(changed)

    def search(
        self, terms: list[str], any_term: bool, kinds: list[str], prefix: str, limit: int
    ) -> list[DocHit]:
        expression = (" OR " if any_term else " ").join(f'"{t}"' for t in terms)
        rows = self.db.execute(
            """
            SELECT path, line, kind, title,
                   snippet(chunks, 4, '[', ']', ' … ', 24), bm25(chunks, 0, 0, 0, 4.0, 1.0)
            FROM chunks
            WHERE chunks MATCH ? AND kind IN (SELECT value FROM json_each(?))
                  AND (? = '' OR path = ? OR path LIKE ? ESCAPE '\\')
            ORDER BY 6 LIMIT ?
            """,
            (expression, json.dumps(kinds), prefix, prefix, _like_prefix(prefix), limit),
        )
        return [
            DocHit(path=p, line=ln, kind=k, title=t, snippet=s, score=round(-score, 4))
            for p, ln, k, t, s, score in rows
        ]

    def _forget(self, relative: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE path = ?", (relative,))
        self.db.execute("DELETE FROM files WHERE path = ?", (relative,))


def search_docs(
    ctx: ToolContext,
    query: Annotated[str, Field(min_length=1, max_length=500, description="Words to look for.")],
    limit: Annotated[int, Field(ge=1, le=50, description="Most results returned.")] = 10,
    kinds: Annotated[
        list[ChunkKind],
        Field(description="Which texts to search: docs (Markdown/RST/txt), docstring, comment."),
    ] = ["docs", "docstring", "comment"],  # noqa: B006 - pydantic copies defaults
    path: Annotated[
        Path | None, PathArgument(), Field(description="Only under this folder or file.")
    ] = None,
) -> SearchDocsResult:
    """Search the project's documentation, docstrings and comments, best matches first (BM25).

    Every word must appear in a result; when no passage has them all, passages with any of them
    are returned and `match` says so.
    """
    started = time.perf_counter()
    terms = re.findall(r"\w+", query)
    if not terms:
        raise ToolInputRejected("query has no searchable words")
    digest = hashlib.sha256(str(ctx.sandbox.root).encode()).hexdigest()[:16]
    index = ctx.shared(DocsIndex, lambda: DocsIndex(ctx.cache_dir / f"docs-{digest}.sqlite3"))
    files = [
        f
        for f in project_files(ctx.sandbox, ctx.sandbox.root)
        if (language_of(f.relative.rsplit("/", 1)[-1]) or "") in _DOC_LANGUAGES | _CODE_LANGUAGES
    ]
    prefix = "" if path is None or path == ctx.sandbox.root else ctx.sandbox.relative(path)
    with index.lock:
        reindexed = index.refresh(files, ctx.settings.max_file_bytes)
        hits = index.search(terms, False, list(kinds), prefix, limit)
        match: Literal["all_terms", "any_term"] = "all_terms"
        if not hits and len(terms) > 1:
            hits, match = index.search(terms, True, list(kinds), prefix, limit), "any_term"
    return SearchDocsResult(
        query=query,
        match=match,
        results=hits,
        indexed_files=len(files),
        reindexed_files=reindexed,
        elapsed_ms=int((time.perf_counter() - started) * 1000),
    )


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "/%"


def _chunks(found: ProjectFile, max_bytes: int) -> list[_Chunk]:
    if found.size > max_bytes:
        return []
    try:
        source = found.path.read_bytes()
        text = source.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    language = language_of(found.relative.rsplit("/", 1)[-1]) or ""
    reader = _CHUNKERS.get(language)
    if reader is None and language in _CODE_LANGUAGES:
        return list(_tree_sitter_comments(language, source))
    return list(reader(text)) if reader else []


def _split(kind: ChunkKind, line: int, title: str, body: str) -> Iterator[_Chunk]:
    """Long sections become several chunks so BM25 is not skewed by length alone."""
    for start in range(0, max(len(body), 1), _CHUNK_CHARS):
        yield _Chunk(kind, line, title[:200], body[start : start + _CHUNK_CHARS])


def _markdown_chunks(text: str) -> Iterator[_Chunk]:
    title, start, body = "", 1, []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        fenced ^= line.lstrip().startswith("```")
        heading = None if fenced else re.match(r"^#{1,6}\s+(.*)", line)
        if heading:
            if "".join(body).strip() or title:
                yield from _split("docs", start, title, "\n".join(body))
            title, start, body = heading.group(1).strip(), number, []
        else:
            body.append(line)
    if "".join(body).strip() or title:
        yield from _split("docs", start, title, "\n".join(body))


def _rst_chunks(text: str) -> Iterator[_Chunk]:
    lines = text.splitlines()
    title, start, body = "", 1, []
    number = 0
    while number < len(lines):
        line = lines[number]
        underline = lines[number + 1] if number + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"([=\-~^\"'`#*+])\1{2,}", underline.strip()):
            if len(underline.strip()) >= len(line.strip()):
                if "".join(body).strip() or title:
                    yield from _split("docs", start, title, "\n".join(body))
                title, start, body = line.strip(), number + 1, []
                number += 2
                continue
        body.append(line)
        number += 1
    if "".join(body).strip() or title:
        yield from _split("docs", start, title, "\n".join(body))


def _text_chunks(text: str) -> Iterator[_Chunk]:
    lines = text.splitlines()
    for start in range(0, len(lines), 60):
        block = "\n".join(lines[start : start + 60])
        if block.strip():
            yield from _split("docs", start + 1, lines[start].strip()[:80], block)


def _python_chunks(text: str) -> Iterator[_Chunk]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    module_doc = ast.get_docstring(tree)
    if module_doc:
        yield from _split("docstring", 1, "module", module_doc)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield from _split("docstring", node.lineno, node.name, doc)
    yield from _grouped_comments(_python_comment_lines(text))


def _python_comment_lines(text: str) -> Iterator[tuple[int, str]]:
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                yield token.start[0], token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        return


def _tree_sitter_comments(language: str, source: bytes) -> Iterator[_Chunk]:
    tree = tree_sitter_parse(language, source)
    lines: list[tuple[int, str]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in _COMMENT_NODES:
            text = (node.text or b"").decode("utf-8", "replace")
            for offset, line in enumerate(text.splitlines()):
                cleaned = re.sub(r"^\s*(//+|/\*+|\*+/?|\*)\s?", "", line).removesuffix("*/")
                lines.append((node.start_point[0] + 1 + offset, cleaned.strip()))
        else:
            stack.extend(node.children)
    yield from _grouped_comments(sorted(lines))


def _grouped_comments(lines: Iterator[tuple[int, str]] | list[tuple[int, str]]) -> Iterator[_Chunk]:
    """Consecutive comment lines form one chunk, titled by its first words."""
    block: list[tuple[int, str]] = []
    for number, text in [*lines, (-10, "")]:
        if block and number != block[-1][0] + 1:
            body = "\n".join(t for _, t in block).strip()
            if len(body) > 3:
                yield from _split("comment", block[0][0], body.splitlines()[0][:80], body)
            block = []
        if number > 0:
            block.append((number, text))


_CHUNKERS = {
    "markdown": _markdown_chunks,
    "rst": _rst_chunks,
    "text": _text_chunks,
    "python": _python_chunks,
}
