"""A model's answer as every protocol edge sees it: content and tool calls, checked.

`Engine.reply` returns a `Reply`; iterating `reply.chunks()` gives `ReplyChunk`s in which tool-call
markup is already parsed out of the text (whatever the backend: calls written in the text by a
local model, or handed over whole by a remote server) and, once the stream ends, `reply.result` is
the final `GenerationResult` with `tool_calls` set and finish_reason "tool_calls" when the model
called one. A request with `json_output` is checked when the stream ends: output that does not
match raises `StructuredOutputError` (a stream cannot take back what it sent; `Engine.complete`
sends such output back to the model once instead).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema

from breakingwind.engine.stream import GenerationStream
from breakingwind.engine.tool_calls import ToolCallParser
from breakingwind.engine.types import GenerationRequest, GenerationResult, TokenLogprob, ToolCall
from breakingwind.errors import InvalidRequest, StructuredOutputError
from breakingwind.prompts import render_prompt


@dataclass(frozen=True)
class JsonOutput:
    """Ask for JSON output: any JSON object (`schema` None) or one matching a JSON schema.

    The engine builds the grammar from it (in a worker thread), sends the schema to backends that
    take one, and checks the output with `problems` (the grammar alone is not trusted).
    """

    schema: dict[str, Any] | None = None
    name: str = "response_format"  # how errors and the retry prompt name what was asked for

    def __post_init__(self) -> None:
        if self.schema is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(self.schema)
            except jsonschema.SchemaError as exc:
                raise InvalidRequest(f"invalid JSON schema: {exc.message}") from None
            except RecursionError:  # the metaschema check recurses once per nested level
                raise InvalidRequest("invalid JSON schema: nested too deeply") from None
            except OverflowError as exc:  # e.g. Python's re, compiling a pattern's `a{10**12}`
                raise InvalidRequest(f"invalid JSON schema: {exc}") from None

    @property
    def json_schema(self) -> dict[str, Any]:
        """The schema to ask a remote server for (any JSON object when none was given)."""
        return self.schema if self.schema is not None else {"type": "object"}

    def problems(self, text: str) -> str | None:
        """What is wrong with `text` as this output, or None when it matches."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"not valid JSON: {exc}"
        if self.schema is None:
            return None if isinstance(value, dict) else "expected a JSON object"
        validator = jsonschema.Draft202012Validator(self.schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        if not errors:
            return None
        return "; ".join(
            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]
        )


def retry_messages(
    messages: list[dict[str, Any]], raw: str, name: str, errors: str
) -> list[dict[str, Any]]:
    """The conversation that sends invalid structured output back to the model once."""
    return [
        *messages,
        {"role": "assistant", "content": raw},
        {
            "role": "user",
            "content": render_prompt("structured_retry.md", schema_name=name, errors=errors),
        },
    ]


@dataclass
class ReplyChunk:
    """One piece of a streamed reply: `content` for the user, tool calls completed by this piece,
    `text`, the raw generated text it came from (progress displays show that), and the log
    probabilities of the tokens generated since the last piece (when asked for)."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)


class Reply:
    """A generation in progress, parsed into content and tool calls; see the module docstring.

    Use as an async context manager (leaving it early cancels the generation).
    """

    def __init__(
        self, stream: GenerationStream, request: GenerationRequest, check: bool = True
    ) -> None:
        self._stream = stream
        self._json_output = request.json_output
        self._check = check
        self._parser = ToolCallParser(stream.tool_format) if stream.tool_format else None
        self._content: list[str] = []
        self._content_chars = 0
        # GenerationRequest.tool_preamble_chars; kept only where calls are parsed from the text
        preamble = request.tool_preamble_chars
        self._preamble_chars = preamble if self._parser is not None else None
        self._cut = False  # ended for its preamble
        self.result: GenerationResult | None = None
        self.problem: str | None = None  # why the output failed its JSON check, if it did

    async def chunks(self, keepalive_s: float | None = None) -> AsyncIterator[ReplyChunk | None]:
        """The reply piece by piece; with `keepalive_s`, None after each such silence (and
        whatever is already waiting is joined into one chunk, for streaming responses)."""
        source: AsyncIterator[str | None] = (
            self._stream.deltas(keepalive_s) if keepalive_s is not None else self._stream
        )
        async for text in source:
            if text is None:
                yield None
                continue
            if self._cut:
                continue  # what came before the worker saw the cancel: not part of the reply
            chunk = self._parsed(text)
            self._content_chars += len(chunk.content)
            if self._preamble_too_long():
                self._cut = True
                self._stream.cancel()  # the worker ends it before its next token
            chunk.logprobs = self._stream.take_logprobs()
            if chunk.content or chunk.tool_calls or chunk.text or chunk.logprobs:
                yield chunk
        raw = self._stream.result
        assert raw is not None
        tail = self._parser.finish() if self._parser else None
        # A backend that receives calls as such (a remote server) hands them over in the result.
        late_calls = [*(tail.calls if tail else []), *raw.tool_calls]
        logprobs = self._stream.take_logprobs()  # of tokens whose text a stop string held back
        if tail is not None and tail.content or late_calls or logprobs:
            content = tail.content if tail is not None else ""
            self._content.append(content)
            yield ReplyChunk(content=content, tool_calls=late_calls, logprobs=logprobs)
        self.result = self._final(raw)
        if self._json_output is not None and self.result.finish_reason != "length":
            self.problem = self._json_output.problems(self.result.text)
        if self._check and self.problem is not None:
            raise StructuredOutputError(
                f"output did not match {self._json_output.name}: {self.problem}",  # type: ignore[union-attr]
                raw_output=self.result.text,
            )

    async def collect(self) -> GenerationResult:
        """Read the reply to the end and return its result."""
        async for _ in self.chunks():
            pass
        assert self.result is not None
        return self.result

    def _parsed(self, text: str) -> ReplyChunk:
        if self._parser is None:
            self._content.append(text)
            return ReplyChunk(content=text, text=text)
        parsed = self._parser.feed(text)
        self._content.append(parsed.content)
        return ReplyChunk(content=parsed.content, tool_calls=parsed.calls, text=text)

    def _preamble_too_long(self) -> bool:
        if self._preamble_chars is None:
            return False
        assert self._parser is not None  # a preamble limit is kept only where calls are parsed
        if self._parser.calls or self._parser.in_call:
            return False
        return self._content_chars > self._preamble_chars

    def _final(self, raw: GenerationResult) -> GenerationResult:
        if self._cut:  # the reply is what was read before the cut
            raw = replace(raw, text="".join(self._content), finish_reason="stop")
        calls = (self._parser.calls if self._parser else []) + raw.tool_calls
        if self._parser is None or not calls:
            return replace(raw, finish_reason="tool_calls") if calls else raw
        return replace(
            raw, text="".join(self._content), tool_calls=calls, finish_reason="tool_calls"
        )

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def __aenter__(self) -> Reply:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
