"""Source outlines: the symbols and imports of one file, per language.

Python is read with `ast` (signatures, bases, docstrings); JavaScript, TypeScript, Go and Rust
with tree-sitter queries (symbol names, kinds, lines and the declaration's first line). The
table `OUTLINERS` picks the reader by language; `LANGUAGES` maps file suffixes to languages.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import tree_sitter
import tree_sitter_go
import tree_sitter_javascript
import tree_sitter_rust
import tree_sitter_typescript

LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".java": "java",
    ".kt": "kotlin", ".rb": "ruby", ".php": "php", ".cs": "csharp", ".swift": "swift",
    ".sh": "shell", ".bash": "shell", ".md": "markdown", ".rst": "rst", ".txt": "text",
    ".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".html": "html",
    ".css": "css", ".sql": "sql",
}  # fmt: skip
_SIGNATURE_CHARS = 200


@dataclass
class Symbol:
    name: str
    kind: str
    line: int
    end_line: int
    signature: str
    parent: str | None = None
    doc: str | None = None


@dataclass
class Outline:
    symbols: list[Symbol] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    doc: str | None = None
    error: str | None = None


def language_of(name: str) -> str | None:
    """The language of a file name by its suffix, or None."""
    dot = name.rfind(".")
    return LANGUAGES.get(name[dot:].lower()) if dot > 0 else None


def outline(language: str, source: bytes) -> Outline | None:
    """The outline of `source`, or None when the language is not outlined."""
    outliner = OUTLINERS.get(language)
    return outliner(source) if outliner else None


def _python_outline(source: bytes) -> Outline:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return Outline(error=f"syntax error: {exc}")
    result = Outline(doc=_first_line(ast.get_docstring(tree)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            result.imports.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            if node.module is None:
                result.imports.extend(base + alias.name for alias in node.names)
            else:
                result.imports.append(base)
    _python_symbols(tree.body, None, result.symbols)
    return result


def _python_symbols(body: list[ast.stmt], parent: str | None, out: list[Symbol]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(base) for base in node.bases)
            out.append(_py_symbol(node, "class", f"class {node.name}({bases})", parent))
            _python_symbols(node.body, node.name, out)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            signature = f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"
            kind = "method" if parent is not None else "function"
            out.append(_py_symbol(node, kind, signature, parent))


def _py_symbol(
    node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
    kind: str,
    signature: str,
    parent: str | None,
) -> Symbol:
    return Symbol(
        name=node.name,
        kind=kind,
        line=node.lineno,
        end_line=node.end_lineno or node.lineno,
        signature=signature[:_SIGNATURE_CHARS],
        parent=parent,
        doc=_first_line(ast.get_docstring(node)),
    )


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0][:_SIGNATURE_CHARS] if text and text.strip() else None


# Tree-sitter: one query per language; capture names are symbol kinds, plus @name and @import.
_JS_QUERY = """
(function_declaration name: (_) @name) @function
(generator_function_declaration name: (_) @name) @function
(class_declaration name: (_) @name) @class
(method_definition name: (_) @name) @method
(variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)])
  @function
(import_statement source: (string) @import)
(export_statement source: (string) @import)
(call_expression function: (identifier) @_require arguments: (arguments . (string) @import)
  (#eq? @_require "require"))
"""
_TS_EXTRA = """
(abstract_class_declaration name: (_) @name) @class
(interface_declaration name: (_) @name) @interface
(type_alias_declaration name: (_) @name) @type
(enum_declaration name: (_) @name) @enum
(function_signature name: (_) @name) @function
"""
_GO_QUERY = """
(function_declaration name: (_) @name) @function
(method_declaration
  receiver: (parameter_list (parameter_declaration type: (_) @receiver)) name: (_) @name) @method
(type_spec name: (_) @name type: (struct_type)) @struct
(type_spec name: (_) @name type: (interface_type)) @interface
(type_spec name: (_) @name) @type
(import_spec path: (_) @import)
"""
_RUST_QUERY = """
(function_item name: (_) @name) @function
(function_signature_item name: (_) @name) @function
(struct_item name: (_) @name) @struct
(enum_item name: (_) @name) @enum
(trait_item name: (_) @name) @trait
(type_item name: (_) @name) @type
(mod_item name: (_) @name) @module
(impl_item type: (_) @name) @impl
(use_declaration argument: (_) @import)
(extern_crate_declaration name: (_) @import)
"""
_CONTAINERS = {"class", "interface", "struct", "trait", "impl"}
_NON_KINDS = {"name", "import", "receiver", "_require"}
_GRAMMARS: dict[str, tuple[Callable[[], object], str]] = {
    "javascript": (tree_sitter_javascript.language, _JS_QUERY),
    "typescript": (tree_sitter_typescript.language_typescript, _JS_QUERY + _TS_EXTRA),
    "tsx": (tree_sitter_typescript.language_tsx, _JS_QUERY + _TS_EXTRA),
    "go": (tree_sitter_go.language, _GO_QUERY),
    "rust": (tree_sitter_rust.language, _RUST_QUERY),
}


@cache
def _grammar(language: str) -> tuple[tree_sitter.Language, tree_sitter.Query]:
    """The compiled grammar and query (immutable, so shared by all threads)."""
    factory, query = _GRAMMARS[language]
    grammar = tree_sitter.Language(factory())
    return grammar, tree_sitter.Query(grammar, query)


def tree_sitter_parse(language: str, source: bytes) -> tree_sitter.Tree:
    """Parse with a fresh parser (parsers are cheap and not shareable between threads)."""
    grammar, _ = _grammar(language)
    return tree_sitter.Parser(grammar).parse(source)


def _tree_sitter_outline(language: str, source: bytes) -> Outline:
    _, query = _grammar(language)
    tree = tree_sitter_parse(language, source)
    result = Outline(error="syntax errors (partial outline)" if tree.root_node.has_error else None)
    best: dict[int, tuple[int, Symbol]] = {}  # declaration start -> (pattern, symbol)
    containers: list[tuple[int, int, str]] = []
    for pattern, captures in tree_sitter.QueryCursor(query).matches(tree.root_node):
        for node in captures.get("import", []):
            result.imports.append(_text(node).strip("\"'`"))
        kind = next((key for key in captures if key not in _NON_KINDS), None)
        if kind is None or "name" not in captures:
            continue
        node = captures[kind][0]
        if node.start_byte in best and best[node.start_byte][0] < pattern:
            continue  # an earlier, more specific pattern already took this declaration
        receiver = captures.get("receiver")
        symbol = Symbol(
            name=_text(captures["name"][0]),
            kind=kind,
            line=node.start_point[0] + 1,
            end_line=node.end_point[0] + 1,
            signature=_declaration_line(node),
            parent=_text(receiver[0]).lstrip("*") if receiver else None,
        )
        best[node.start_byte] = (pattern, symbol)
        if kind in _CONTAINERS:
            containers.append((node.start_byte, node.end_byte, symbol.name))
    placed = sorted((start, symbol) for start, (_, symbol) in best.items())
    result.symbols = [symbol for _, symbol in placed]
    _attach_parents(placed, containers)
    return result


def _attach_parents(
    placed: list[tuple[int, Symbol]], containers: list[tuple[int, int, str]]
) -> None:
    """Functions inside a class/impl/struct become its methods (the innermost container wins)."""
    for start, symbol in placed:
        if symbol.kind not in ("function", "method") or symbol.parent is not None:
            continue
        inside = [c for c in containers if c[0] < start < c[1]]
        if inside:
            symbol.parent = max(inside, key=lambda c: c[0])[2]
            symbol.kind = "method"


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _declaration_line(node: tree_sitter.Node) -> str:
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    text = (node.text or b"")[: end - node.start_byte].decode("utf-8", "replace")
    return " ".join(text.split())[:_SIGNATURE_CHARS]


OUTLINERS: dict[str, Callable[[bytes], Outline]] = {
    "python": _python_outline,
    **{name: (lambda source, name=name: _tree_sitter_outline(name, source)) for name in _GRAMMARS},
}
