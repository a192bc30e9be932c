"""One chat turn, whatever protocol it came in: the core the three /v1 edges translate onto.

Chat completions, the Responses API and Anthropic's Messages API each turn their body into a
`ChatCompletionRequest` (the internal request shape), then call `start_turn` (streamed) or
`complete_turn`, and shape what comes back in their own protocol. `TurnStream.events()` yields
text deltas and complete tool calls; its `result` holds the finish reason and usage. The pipeline
model (`breakingwind`) has the same kind of core: `pipeline_turn`, whose events are progress lines
(reasoning) and the final message (text).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import State

from breakingwind.api.openai_routes import (
    OutputCheck,
    _chat_request,
    _complete_checked,
    _engine_messages,
)
from breakingwind.api.openai_schemas import ChatCompletionRequest
from breakingwind.api.pipeline_chat import task_text
from breakingwind.api.sse import invalid_request
from breakingwind.api.workflow_routes import event_stream_items
from breakingwind.engine import Engine, GenerationRequest, GenerationResult, GenerationStream
from breakingwind.engine.tool_calls import ToolCall, ToolCallParser
from breakingwind.errors import StructuredOutputError
from breakingwind.pipeline import Pipeline
from breakingwind.progress import final_message, progress_line


def internal_request(fields: dict[str, Any]) -> ChatCompletionRequest:
    """Validate an edge's translation into the internal request; a field the translation
    could not make right is a 400 that names it."""
    try:
        return ChatCompletionRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_request(exc) from None


@dataclass(frozen=True)
class ChatTurn:
    agent: str
    generation: GenerationRequest
    check: OutputCheck | None


async def plan_turn(state: State, agent: str, body: ChatCompletionRequest) -> ChatTurn:
    """The engine request for `body` on `agent` (media read to text, tools and format checked)."""
    messages = await _engine_messages(body.messages, state.media, state.settings.project.root)
    generation, check = _chat_request(body, messages)
    return ChatTurn(agent, generation, check)


async def complete_turn(engine: Engine, turn: ChatTurn) -> GenerationResult:
    """Generate to the end: tool calls parsed out, JSON output checked (retried once)."""
    return await _complete_checked(engine, turn.agent, turn.generation, turn.check)


class TurnStream:
    """A streamed turn: `events()` yields text (str), complete tool calls (`ToolCall`) and None
    after each `keepalive_s` of silence; then `result` is set (finish reason "tool_calls" when
    the model called a tool). Closing the iterator cancels the generation."""

    def __init__(self, stream: GenerationStream, check: OutputCheck | None) -> None:
        self._stream = stream
        self._check = check
        self.result: GenerationResult | None = None

    async def events(self, keepalive_s: float) -> AsyncIterator[str | ToolCall | None]:
        stream = self._stream
        parser = ToolCallParser(stream.tool_format) if stream.tool_format else None
        text: list[str] = []
        calls: list[ToolCall] = []
        try:
            async for item in stream.deltas(keepalive_s):
                if item is None or parser is None:
                    if item is not None:
                        text.append(item)
                    yield item
                    continue
                parsed = parser.feed(item)
                if parsed.content:
                    text.append(parsed.content)
                    yield parsed.content
                for call in parsed.calls:
                    calls.append(call)
                    yield call
            if parser is not None:
                parsed = parser.finish()
                if parsed.content:
                    text.append(parsed.content)
                    yield parsed.content
                for call in parsed.calls:
                    calls.append(call)
                    yield call
            result = stream.result
            assert result is not None
            for call in result.tool_calls:  # a remote backend hands calls over in the result
                calls.append(call)
                yield call
        finally:
            await stream.aclose()
        output = "".join(text)
        if self._check is not None and result.finish_reason != "length":
            if (problem := self._check.problems(output)) is not None:
                raise StructuredOutputError(
                    f"output did not match the requested format: {problem}", raw_output=output
                )
        finish = "tool_calls" if calls else result.finish_reason
        self.result = replace(result, text=output, tool_calls=calls, finish_reason=finish)


async def start_turn(engine: Engine, turn: ChatTurn) -> TurnStream:
    """Start generating; errors before the first token (queue full, context) are raised here."""
    return TurnStream(await engine.stream(turn.agent, turn.generation), turn.check)


@dataclass(frozen=True)
class Reasoning:
    """A line of pipeline progress, shown as reasoning / thinking."""

    text: str


class PipelineTurn:
    """The pipeline behind a chat: `events()` yields `Reasoning` progress lines, None after each
    `keepalive_s` of silence, and finally the summary with the diff as text (str)."""

    def __init__(self, state: State, task_id: str) -> None:
        self._store = state.store
        self.task_id = task_id

    async def events(self, keepalive_s: float) -> AsyncIterator[Reasoning | str | None]:
        async for event in event_stream_items(self._store, self.task_id, 0, keepalive_s):
            if event is None:
                yield None
                continue
            line = progress_line(event)
            if line:
                yield Reasoning(line)
        yield final_message(self._store.get(self.task_id))


def pipeline_turn(state: State, body: ChatCompletionRequest) -> PipelineTurn:
    """Start the whole pipeline on the task in `body`'s last user message."""
    pipeline: Pipeline = state.pipeline
    return PipelineTurn(state, pipeline.submit(task_text(body), None, None).task_id)


async def pipeline_answer(state: State, body: ChatCompletionRequest) -> tuple[str, str]:
    """Run the pipeline to the end: (its progress as one text, the final message)."""
    turn = pipeline_turn(state, body)
    progress: list[str] = []
    final = ""
    async for item in turn.events(state.settings.server.keepalive_s):
        if isinstance(item, Reasoning):
            progress.append(item.text)
        elif item is not None:
            final = item
    return "".join(progress), final


def tool_arguments(call: ToolCall) -> dict[str, Any]:
    """A call's arguments as an object (the grammar keeps them one; anything else is wrapped)."""
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {"arguments": call.arguments}
    return value if isinstance(value, dict) else {"arguments": value}
