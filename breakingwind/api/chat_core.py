"""One chat turn, whatever protocol it came in: the core the three /v1 edges translate onto.

Chat completions, the Responses API and Anthropic's Messages API each turn their body into a
`ChatCompletionRequest` (the internal request shape), then `plan_turn` makes the engine request
and the edge calls `Engine.reply` (streamed: content and parsed tool calls, checked by the
engine) or `Engine.complete`, and shapes what comes back in its own protocol. The pipeline model
(`breakingwind`) has the same kind of core, `PipelineTurn`, whose events are progress lines
(reasoning) and the final message (text).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import State

from breakingwind.api.openai_schemas import (
    ChatCompletionRequest,
    Message,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
)
from breakingwind.api.pipeline_chat import task_text
from breakingwind.api.sse import invalid_request
from breakingwind.api.workflow_routes import event_stream_items
from breakingwind.engine import GenerationRequest
from breakingwind.engine.output import JsonOutput
from breakingwind.engine.types import ToolCall
from breakingwind.errors import InvalidRequest
from breakingwind.progress import final_message, progress_line
from breakingwind.runtime import Runtime


def internal_request(fields: dict[str, Any]) -> ChatCompletionRequest:
    """Validate an edge's translation into the internal request; a field the translation
    could not make right is a 400 that names it."""
    try:
        return ChatCompletionRequest.model_validate(fields)
    except ValidationError as exc:
        raise invalid_request(exc) from None


async def plan_turn(state: State, body: ChatCompletionRequest) -> GenerationRequest:
    """The engine request for `body` (media read to text, tools and output format checked)."""
    return chat_request(body, await engine_messages(body.messages, state.runtime))


async def engine_messages(messages: list[Message], runtime: Runtime) -> list[dict[str, Any]]:
    """The messages as the engine takes them: content as text (images and audio read by the
    runtime's one conversion, as the preprocessor sees them)."""
    root = runtime.settings.project.root
    out = []
    for i, message in enumerate(messages):
        content = message.content
        if content is not None:
            content = await runtime.task_text(content, root, f"messages[{i}]")
        entry: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": content,
        }
        if message.tool_calls:
            entry["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        if message.tool_call_id:
            entry["tool_call_id"] = message.tool_call_id
        if message.name:
            entry["name"] = message.name
        out.append(entry)
    return out


def chat_request(body: ChatCompletionRequest, messages: list[dict[str, Any]]) -> GenerationRequest:
    """The engine request for `body`."""
    tools = [tool.model_dump(exclude_none=True) for tool in body.tools] if body.tools else None
    choice = body.tool_choice or ("auto" if tools else "none")
    if isinstance(choice, NamedToolChoice):
        names = {tool["function"]["name"] for tool in tools or []}
        if choice.function.name not in names:
            raise InvalidRequest(
                f"tool_choice names {choice.function.name!r}, which is not in tools",
                param="tool_choice",
            )
        choice = choice.function.name
    elif choice == "required" and not tools:
        raise InvalidRequest("tool_choice 'required' needs tools", param="tool_choice")
    json_output = None
    fmt = body.response_format
    if isinstance(fmt, ResponseFormatJsonObject | ResponseFormatJsonSchema):
        if tools and choice != "none":
            raise InvalidRequest(
                "response_format json output cannot be combined with tools",
                param="response_format",
            )
        json_output = json_output_of(fmt)
    return GenerationRequest(
        messages=messages,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=body.stops,
        json_output=json_output,
        tools=tools if choice != "none" else None,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        ignore_eos=body.ignore_eos,
        logprobs=body.logprobs_asked,
        **body.sampling(),
    )


def json_output_of(fmt: ResponseFormatJsonObject | ResponseFormatJsonSchema) -> JsonOutput:
    if isinstance(fmt, ResponseFormatJsonObject):
        return JsonOutput()
    try:
        return JsonOutput(fmt.json_schema.schema_)
    except InvalidRequest as exc:
        exc.param = "response_format.json_schema.schema"
        raise


@dataclass(frozen=True)
class Reasoning:
    """A line of pipeline progress, shown as reasoning / thinking."""

    text: str


class PipelineTurn:
    """The pipeline behind a chat: `events()` yields `Reasoning` progress lines, None after each
    `keepalive_s` of silence, and finally the summary with the diff as text (str)."""

    def __init__(self, runtime: Runtime, task_id: str) -> None:
        self._store = runtime.store
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


async def pipeline_turn(state: State, body: ChatCompletionRequest) -> PipelineTurn:
    """Start the whole pipeline on the task in `body`'s last user message."""
    runtime: Runtime = state.runtime
    task = runtime.pipeline.submit(await task_text(runtime, body), None, None)
    return PipelineTurn(runtime, task.task_id)


async def pipeline_answer(state: State, body: ChatCompletionRequest) -> tuple[str, str]:
    """Run the pipeline to the end: (its progress as one text, the final message)."""
    turn = await pipeline_turn(state, body)
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
