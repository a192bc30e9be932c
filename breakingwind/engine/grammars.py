"""GBNF grammars for JSON output, built on llama-cpp-python's JSON-schema converter.

The converter's string rule admits raw control characters (a raw newline inside a JSON string is
invalid JSON — the hazard DESIGN.md measured), so every grammar built here forbids them, as
llama.cpp's own C++ converter does.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from breakingwind.errors import GrammarError

if TYPE_CHECKING:
    from breakingwind.engine.output import JsonOutput

JSON_OBJECT_GRAMMAR = JSON_GBNF
_LAX_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'
_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)
_CLASS_ESCAPE = re.compile(r"\\[wdsWDS]")


def json_schema_grammar(schema: dict[str, Any], root_name: str = "root") -> str:
    """A grammar for JSON matching `schema`; its top rule is named `root_name`.

    Regex patterns using class escapes (\\w, \\d, \\s) are left out of the grammar: the
    converter copies them into GBNF, which has no such escapes, and llama.cpp would refuse the
    whole grammar. The output is still validated against the full schema afterwards.
    """
    schema = _without_unsupported_patterns(_grammar_friendly(schema))
    grammar = json_schema_to_gbnf(json.dumps(schema)).replace(_LAX_CHAR, _STRICT_CHAR)
    if root_name != "root":
        grammar = _ROOT_RULE.sub(f"{root_name} ::=", grammar)
    return grammar


# Keys that describe a schema without constraining it; a schema of only these accepts any value.
_ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly"}
)
_SUBSCHEMA = ("items", "additionalProperties", "not", "contains", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


# Length bounds the converter writes out one repetition at a time: {"maxLength": 524288} (as
# Claude Code's Workflow tool has) became a 4 MB rule nested 524288 deep, and llama.cpp's grammar
# parser overflowed its stack on it (a segfault that took the daemon down). Larger bounds are
# left to the validation after generation.
MAX_GRAMMAR_REPEAT = 256
_BOUNDS = ("maxLength", "minLength", "maxItems", "minItems")


def _grammar_friendly(schema: Any) -> Any:
    """`schema` as the converter can take it: every schema of annotations only
    (`{"description": ...}`, any value, as tool schemas often say; the converter refuses it)
    becomes `{}`, and length bounds over MAX_GRAMMAR_REPEAT are left out."""
    if not isinstance(schema, dict):
        return schema
    if schema and set(schema) <= _ANNOTATIONS:
        return {}
    out = {
        key: value
        for key, value in schema.items()
        if not (key in _BOUNDS and isinstance(value, int) and value > MAX_GRAMMAR_REPEAT)
    }
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


def json_output_grammar(output: JsonOutput) -> str:
    """The grammar for `output`: any JSON object, or JSON matching its schema."""
    if output.schema is None:
        return JSON_OBJECT_GRAMMAR
    try:
        return json_schema_grammar(output.schema)
    except Exception as exc:  # the converter raises bare errors on unsupported schemas
        raise GrammarError(f"unsupported JSON schema: {exc}") from None


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
