"""GBNF grammars for JSON output, built on llama-cpp-python's JSON-schema converter.

The converter's string rule admits raw control characters (a raw newline inside a JSON string is
invalid JSON — the hazard DESIGN.md measured), so every grammar built here forbids them, as
llama.cpp's own C++ converter does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

JSON_OBJECT_GRAMMAR = JSON_GBNF
_LAX_CHAR = 'char ::= [^"\\\\]'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F]'
_ROOT_RULE = re.compile(r"^root ::=", re.MULTILINE)


def json_schema_grammar(schema: dict[str, Any], root_name: str = "root") -> str:
    """A grammar for JSON matching `schema`; its top rule is named `root_name`."""
    grammar = json_schema_to_gbnf(json.dumps(schema)).replace(_LAX_CHAR, _STRICT_CHAR)
    if root_name != "root":
        grammar = _ROOT_RULE.sub(f"{root_name} ::=", grammar)
    return grammar


def gbnf_literal(text: str) -> str:
    """`text` as a quoted GBNF string literal."""
    return json.dumps(text)
