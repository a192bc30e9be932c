"""GBNF grammars for JSON output, built on llama-cpp-python's JSON-schema converter.

The converter's string rule admits raw control characters (a raw newline inside a JSON string is
invalid JSON — the hazard DESIGN.md measured), so every grammar built here forbids them, as
llama.cpp's own C++ converter does.

A client's schema is bounded before it is converted (`check_schema_limits`) and the grammar text
before llama.cpp parses it (`check_grammar_limits`): the converter nests one parenthesis per
optional repetition, llama.cpp's parser recurses once per parenthesis, and a deep enough nesting
overflows the stack — a segfault that takes the daemon down, not an error. Both run on worker
threads, never on the event loop.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from breakingwind.config import GrammarLimits
from breakingwind.errors import GrammarError, GrammarLimitExceeded

if TYPE_CHECKING:
    from breakingwind.engine.output import JsonOutput

JSON_OBJECT_GRAMMAR = JSON_GBNF
_LAX_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'
_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)
_CLASS_ESCAPE = re.compile(r"\\[wdsWDS]")
_COUNTED = re.compile(r"\{(\d*)(,?)(\d*)\}")
_REPEAT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
_VALUE_KEYWORDS = frozenset({"enum", "const", "default", "examples"})  # JSON values, not schemas
_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
DEFAULT_LIMITS = GrammarLimits()


def json_schema_grammar(
    schema: dict[str, Any],
    root_name: str = "root",
    limits: GrammarLimits = DEFAULT_LIMITS,
    param: str | None = None,
) -> str:
    """A grammar for JSON matching `schema`; its top rule is named `root_name`.

    Raises `GrammarLimitExceeded` (naming `param`, the request field) when the schema or its
    grammar is over `limits`. Regex patterns using class escapes (\\w, \\d, \\s) are left out
    of the grammar: the converter copies them into GBNF, which has no such escapes, and llama.cpp
    would refuse the whole grammar. The output is still validated against the full schema.
    """
    schema = _grammar_friendly(schema)
    check_schema_limits(schema, limits, param)
    schema = _without_unsupported_patterns(schema)
    grammar = json_schema_to_gbnf(json.dumps(schema)).replace(_LAX_CHAR, _STRICT_CHAR)
    if root_name != "root":
        grammar = _ROOT_RULE.sub(f"{root_name} ::=", grammar)
    check_grammar_limits(grammar, limits, param)
    return grammar


# Keys that describe a schema without constraining it; a schema of only these accepts any value.
_ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly"}
)
_SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def _grammar_friendly(schema: Any) -> Any:
    """`schema` as the converter can take it: every schema of annotations only
    (`{"description": ...}`, any value, as tool schemas often say; the converter refuses it)
    becomes `{}`."""
    if not isinstance(schema, dict):
        return schema
    if schema and set(schema) <= _ANNOTATIONS:
        return {}
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out:
            out[key] = _grammar_friendly(out[key])
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_grammar_friendly(item) for item in out[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _grammar_friendly(sub) for name, sub in out[key].items()}
    return out


def json_output_grammar(output: JsonOutput, limits: GrammarLimits = DEFAULT_LIMITS) -> str:
    """The grammar for `output`: any JSON object, or JSON matching its schema (bounded by
    `limits`; `GrammarLimitExceeded` names `output.name` as the request field)."""
    if output.schema is None:
        return JSON_OBJECT_GRAMMAR
    param = output.name
    check_schema_limits(output.schema, limits, param)
    try:
        return json_schema_grammar(output.schema, limits=limits, param=param)
    except GrammarError:
        raise
    except Exception as exc:  # the converter raises bare errors on unsupported schemas
        raise GrammarError(f"unsupported JSON schema: {exc}") from None


def relaxed_tool_schema(schema: Any, limits: GrammarLimits) -> Any:
    """`schema` with the bounds a tool call need not be held to by the grammar left out: upper
    bounds (maxLength, maxItems) over `limits.max_repeat` and patterns over the pattern limits.

    Coding clients declare such bounds as sanity limits (Claude Code's tools say
    `maxLength: 524288`); they only allow, never require, and the request's token cap bounds the
    call anyway. Dropping them keeps those clients working where refusing would break them; lower
    bounds, enums, depth and size are still checked by `check_schema_limits`.
    """
    if isinstance(schema, list):
        return [relaxed_tool_schema(item, limits) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("maxLength", "maxItems") and isinstance(value, int | float):
            if value > limits.max_repeat:
                continue
        elif key == "pattern" and isinstance(value, str):
            try:
                _check_pattern(value, "/", limits, None)
            except GrammarLimitExceeded:
                continue
        elif key in _VALUE_KEYWORDS:
            out[key] = value
            continue
        out[key] = relaxed_tool_schema(value, limits)
    return out


def check_schema_limits(schema: Any, limits: GrammarLimits, param: str | None = None) -> None:
    """Raise `GrammarLimitExceeded` if `schema` is over any of `limits` (iteratively: a schema
    nested past Python's recursion limit is refused, not crashed on)."""
    todo: list[tuple[Any, str, int, bool]] = [(schema, "", 1, False)]  # node, at, depth, is_map
    nodes = 0
    while todo:
        node, where, depth, is_map = todo.pop()
        if isinstance(node, list):
            todo.extend((item, f"{where}/{i}", depth, False) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        nodes += 1
        at = where or "/"
        if nodes > limits.max_nodes:
            _refuse(f"the schema has more than {limits.max_nodes} objects", "max_nodes", param)
        if depth > limits.max_depth:
            _refuse(f"the schema nests deeper than {limits.max_depth} at {at}", "max_depth", param)
        if not is_map:
            _check_keywords(node, at, limits, param)
        for key, value in node.items():
            if is_map or key not in _VALUE_KEYWORDS:
                todo.append((value, f"{where}/{key}", depth + 1, not is_map and key in _MAPS))


def _check_keywords(
    node: dict[str, Any], at: str, limits: GrammarLimits, param: str | None
) -> None:
    for keyword in _REPEAT_KEYWORDS:
        value = node.get(keyword)
        if isinstance(value, int | float) and value > limits.max_repeat:
            _refuse(
                f"{keyword} {value} at {at} is over the limit of {limits.max_repeat}",
                "max_repeat",
                param,
            )
    enum = node.get("enum")
    if isinstance(enum, list) and len(enum) > limits.max_enum:
        _refuse(
            f"enum at {at} has {len(enum)} values, over the limit of {limits.max_enum}",
            "max_enum",
            param,
        )
    properties = node.get("properties")
    if isinstance(properties, dict) and len(properties) > limits.max_properties:
        _refuse(
            f"{len(properties)} properties at {at}, over the limit of {limits.max_properties}",
            "max_properties",
            param,
        )
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        _check_pattern(pattern, at, limits, param)


def _check_pattern(pattern: str, at: str, limits: GrammarLimits, param: str | None) -> None:
    if len(pattern) > limits.max_pattern_chars:
        _refuse(
            f"pattern at {at} is {len(pattern)} characters, over the limit of"
            f" {limits.max_pattern_chars}",
            "max_pattern_chars",
            param,
        )
    for match in _COUNTED.finditer(pattern):
        count = max(int(match[1] or 0), int(match[3] or 0))
        if count > limits.max_repeat:
            _refuse(
                f"pattern at {at} repeats {match[0]}, over the limit of {limits.max_repeat}",
                "max_repeat",
                param,
            )
    if (size := pattern_expansion(pattern)) > limits.max_pattern_expansion:
        _refuse(
            f"pattern at {at} expands to {size} characters, over the limit of"
            f" {limits.max_pattern_expansion}",
            "max_pattern_expansion",
            param,
        )


def pattern_expansion(pattern: str) -> int:
    """How many atoms the converter writes out for `pattern`: counted repetitions ({n,m})
    multiply what they repeat, nested groups multiply again, alternatives add up."""
    totals, last = [0], [0]  # per open group: its size so far, and the size of its last atom
    i = 0
    while i < len(pattern):
        char, atom = pattern[i], 1
        if char == "\\":
            i += 2
        elif char == "[":
            i = _class_end(pattern, i)
        elif char == "(":
            totals.append(0)
            last.append(0)
            i += 1
            continue
        elif char == ")":
            atom = totals.pop() if len(totals) > 1 else 0
            last.pop() if len(last) > 1 else None
            i += 1
        elif char == "{" and (match := _COUNTED.match(pattern, i)) and (match[1] or match[3]):
            count = max(int(match[1] or 0), int(match[3] or 0))
            totals[-1] += last[-1] * (count - 1)
            last[-1] *= count
            i = match.end()
            continue
        elif char in "|*+?":
            i += 1
            continue
        else:
            i += 1
        totals[-1] += atom
        last[-1] = atom
    return sum(totals)


def _class_end(pattern: str, start: int) -> int:
    """The index just past the character class opening at `start`."""
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


def check_grammar_limits(grammar: str, limits: GrammarLimits, param: str | None = None) -> None:
    """Raise `GrammarLimitExceeded` if `grammar` is too large, or nested too deep for llama.cpp's
    recursive parser, whatever built it."""
    if len(grammar) > limits.max_grammar_bytes:
        _refuse(
            f"the grammar is {len(grammar)} bytes, over the limit of {limits.max_grammar_bytes}",
            "max_grammar_bytes",
            param,
        )
    if (depth := grammar_nesting(grammar)) > limits.max_grammar_nesting:
        _refuse(
            f"the grammar nests {depth} deep, over the limit of {limits.max_grammar_nesting}",
            "max_grammar_nesting",
            param,
        )


def grammar_nesting(grammar: str) -> int:
    """The deepest parenthesis nesting in GBNF text, outside string literals and classes."""
    depth = deepest = 0
    i, n = 0, len(grammar)
    while i < n:
        char = grammar[i]
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
        elif char == "\n":
            depth = 0  # a new rule
        elif char in '"[':
            close = '"' if char == '"' else "]"
            i += 1
            while i < n and grammar[i] != close:
                i += 2 if grammar[i] == "\\" else 1
        i += 1
    return deepest


def _refuse(message: str, limit: str, param: str | None) -> None:
    where = f"{param}: " if param else ""
    raise GrammarLimitExceeded(
        f"{where}{message} (engine.grammar.{limit})", limit=f"engine.grammar.{limit}", param=param
    )


def _without_unsupported_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_unsupported_patterns(value)
            for key, value in node.items()
            if not (key == "pattern" and isinstance(value, str) and _CLASS_ESCAPE.search(value))
        }
    if isinstance(node, list):
        return [_without_unsupported_patterns(item) for item in node]
    return node


def gbnf_literal(text: str) -> str:
    """`text` as a quoted GBNF string literal."""
    return json.dumps(text)
