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
    schema = _without_unsupported_patterns(schema)
    grammar = json_schema_to_gbnf(json.dumps(schema)).replace(_LAX_CHAR, _STRICT_CHAR)
    if root_name != "root":
        grammar = _ROOT_RULE.sub(f"{root_name} ::=", grammar)
    return grammar


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
