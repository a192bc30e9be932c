"""Tool calling on local models: how calls are written, constrained and parsed back.

A model writes a call as a marked JSON block (`<tool_call>{"name": ..., "arguments": {...}}
</tool_call>` for Hermes/Qwen-style templates; `[TOOL_CALLS][...]` for Mistral; `<TOOLCALL>[...]
</TOOLCALL>` for Nemotron). The format is picked from the chat template by a table. Sampling is
constrained by a grammar built from the tools' JSON schemas, so the arguments always parse:
- tool_choice "auto": a *lazy* grammar that only starts constraining once the model writes the
  opening marker; before that the model may answer in plain text;
- "required" or a named function: the grammar applies from the first token.
`ToolCallParser` turns the generated text back into content and calls, incrementally, for streams.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from breakingwind.config import GrammarLimits
from breakingwind.engine.types import ToolCall, ToolCallFormat

HERMES = ToolCallFormat("hermes", "<tool_call>", "</tool_call>", list_block=False)
# Marker found in a chat template -> the call format its model was trained on.
FORMATS_BY_TEMPLATE_MARKER: dict[str, ToolCallFormat] = {
    "<tool_call>": HERMES,
    "[TOOL_CALLS]": ToolCallFormat("mistral", "[TOOL_CALLS]", "", list_block=True),
    "<TOOLCALL>": ToolCallFormat("nemotron", "<TOOLCALL>", "</TOOLCALL>", list_block=True),
}


def format_for_template(template: str | None) -> ToolCallFormat:
    """The call format a chat template uses; Hermes when it has none of its own."""
    for marker, fmt in FORMATS_BY_TEMPLATE_MARKER.items():
        if template and marker in template:
            return fmt
    return HERMES


ToolChoice = Literal["auto", "required", "none"] | str  # a str other than those names a function


@dataclass(frozen=True)
class ToolGrammar:
    grammar: str
    lazy_triggers: list[str] = field(default_factory=list)  # empty: constrain from the start


def tool_call_grammar(
    tools: list[dict[str, Any]],
    choice: ToolChoice,
    fmt: ToolCallFormat,
    parallel: bool,
    limits: GrammarLimits | None = None,
) -> ToolGrammar:
    """The grammar that keeps calls well-formed for `tools` under `choice`; raises
    `GrammarLimitExceeded` naming the tool whose parameters are over `limits`."""
    # Building grammars needs llama_cpp; parsing calls (below) does not, so it is imported here.
    from breakingwind.engine.grammars import (
        check_schema_limits,
        gbnf_literal,
        json_schema_grammar,
        relaxed_tool_schema,
    )

    limits = limits or GrammarLimits()
    functions = []
    for i, tool in enumerate(tools):
        function = dict(tool["function"])
        if function.get("parameters") is not None:
            function["parameters"] = relaxed_tool_schema(function["parameters"], limits)
        check_schema_limits(function.get("parameters"), limits, f"tools[{i}].function")
        functions.append(function)
    if choice not in ("auto", "required"):
        functions = [f for f in functions if f["name"] == choice]
    alternatives = [
        {
            "type": "object",
            "properties": {
                "name": {"const": f["name"]},
                "arguments": f.get("parameters") or {"type": "object", "properties": {}},
            },
            "required": ["name", "arguments"],
        }
        for f in functions
    ]
    schema = alternatives[0] if len(alternatives) == 1 else {"oneOf": alternatives}
    call_rules = json_schema_grammar(schema, root_name="call", limits=limits, param="tools")
    open_, close = gbnf_literal(fmt.open), gbnf_literal(fmt.close) if fmt.close else ""
    if fmt.list_block:
        calls = 'call (space "," space call)*' if parallel else "call"
        block = f'{open_} space "[" space {calls} space "]" space {close}'.strip()
        root = f"root ::= {block}"
    else:
        block = f"{open_} space call space {close}".strip()
        root = f"root ::= {block} (space {block})*" if parallel else f"root ::= {block}"
    grammar = f"{root}\n{call_rules}"
    if choice == "auto":
        # llama.cpp matches the whole generated text against the pattern; the first group marks
        # where the constrained part starts.
        return ToolGrammar(grammar, lazy_triggers=[rf"[\s\S]*?({re.escape(fmt.open)})[\s\S]*"])
    return ToolGrammar(grammar)


@dataclass
class ParsedDelta:
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)


class ToolCallParser:
    """Splits generated text into plain content and complete tool calls, as text streams in.

    Content that might be the start of an opening marker is held back until it is decided.
    A call is released once its block is complete (closing marker, or the end for formats
    without one). A block that never completes is returned as content by `finish()`.
    """

    def __init__(self, fmt: ToolCallFormat) -> None:
        self._fmt = fmt
        self._buffer = ""
        self._in_block = False
        self.calls: list[ToolCall] = []

    @property
    def in_call(self) -> bool:
        """Whether a call's block has begun (and not yet closed)."""
        return self._in_block

    def feed(self, text: str) -> ParsedDelta:
        self._buffer += text
        out = ParsedDelta()
        while True:
            if not self._in_block:
                start = self._buffer.find(self._fmt.open)
                if start < 0:
                    keep = _partial_marker_suffix(self._buffer, self._fmt.open)
                    out.content += self._buffer[: len(self._buffer) - keep]
                    self._buffer = self._buffer[len(self._buffer) - keep :]
                    return out
                out.content += self._buffer[:start]
                self._buffer = self._buffer[start + len(self._fmt.open) :]
                self._in_block = True
            if not self._fmt.close:
                return out
            end = self._buffer.find(self._fmt.close)
            if end < 0:
                return out
            body, self._buffer = self._buffer[:end], self._buffer[end + len(self._fmt.close) :]
            self._in_block = False
            out.calls += self._parse_block(body)

    def finish(self) -> ParsedDelta:
        """End of generation: close an open block without a closing marker, flush the rest."""
        out = ParsedDelta()
        if self._in_block:
            calls = self._parse_block(self._buffer)
            if calls:
                out.calls = calls
            else:
                out.content = self._fmt.open + self._buffer
        else:
            out.content = self._buffer
        self._buffer = ""
        self._in_block = False
        if self.calls and not out.content.strip():
            out.content = ""
        return out

    def _parse_block(self, body: str) -> list[ToolCall]:
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            return []
        items = parsed if isinstance(parsed, list) else [parsed]
        calls = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return []
            arguments = item.get("arguments", {})
            call = ToolCall(
                index=len(self.calls) + len(calls),
                id=f"call_{uuid.uuid4().hex[:24]}",
                name=item["name"],
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
            calls.append(call)
        self.calls += calls
        return calls


def _partial_marker_suffix(text: str, marker: str) -> int:
    for length in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-length:]):
            return length
    return 0
