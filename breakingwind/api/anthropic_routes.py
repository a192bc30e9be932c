"""Anthropic's Messages API (Claude Code): /v1/messages and /v1/messages/count_tokens.

A thin translation: the body becomes the internal chat request (`ChatCompletionRequest`) and runs
through the same core as /v1/chat/completions (`chat_core`); the answer is shaped as Anthropic's
message or its event stream (message_start, content_block_start/delta/stop, message_delta,
message_stop, ping). Errors use Anthropic's envelope (see `api/errors.py`). The pipeline model
streams its progress as a thinking block and its summary as text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from breakingwind.api.anthropic_schemas import (
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    TextBlock,
    ThinkingBlock,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    _MessagesBase,
)
from breakingwind.api.chat_core import (
    PipelineTurn,
    Reasoning,
    internal_request,
    pipeline_answer,
    pipeline_turn,
    plan_turn,
    tool_arguments,
)
from breakingwind.api.errors import anthropic_error_body
from breakingwind.api.model_names import agent_for_model
from breakingwind.api.openai_chunks import guarded
from breakingwind.api.openai_schemas import ChatCompletionRequest
from breakingwind.api.sse import event_line, event_stream_response, parse_json_body
from breakingwind.engine import Engine, GenerationResult
from breakingwind.engine.output import Reply
from breakingwind.engine.tool_calls import ToolCall
from breakingwind.errors import InvalidRequest

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


# --- Anthropic -> the internal request ----------------------------------------------------------


def chat_request(body: _MessagesBase) -> ChatCompletionRequest:
    """The internal request for a Messages body; a tool_result naming no earlier tool_use is a
    400 naming the field."""
    messages: list[dict[str, Any]] = []
    if body.system:
        system = body.system if isinstance(body.system, str) else _joined(body.system)
        messages.append({"role": "system", "content": system})
    known_ids: set[str] = set()
    for i, message in enumerate(body.messages):
        messages += _messages_of(message, f"messages[{i}]", known_ids)
    fields: dict[str, Any] = {"model": body.model, "messages": messages}
    tools = [t for t in body.tools or [] if t.type in (None, "custom")]
    if tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                },
            }
            for t in tools
        ]
        fields.update(_tool_choice(body))
    if isinstance(body, MessagesRequest):
        fields.update(
            max_tokens=body.max_tokens,
            stream=body.stream,
            stop=body.stop_sequences or None,
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
        )
    return internal_request(fields)


def _joined(blocks: list[TextBlock]) -> str:
    return "\n\n".join(block.text for block in blocks)


def _messages_of(message: MessageParam, where: str, known_ids: set[str]) -> list[dict[str, Any]]:
    """One Anthropic message as chat messages: tool results become `tool` messages (first, as
    they answer the previous turn's calls), tool_use blocks the assistant's tool_calls."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        field = f"{where}.content[{j}]"
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, DocumentBlock):
            parts.append({"type": "text", "text": block.source.data})
        elif isinstance(block, ImageBlock):
            parts.append(_image_part(block))
        elif isinstance(block, ToolUseBlock):
            if message.role != "assistant":
                raise InvalidRequest("tool_use blocks belong to assistant messages", param=field)
            known_ids.add(block.id)
            arguments = json.dumps(block.input)
            calls.append({"id": block.id, "function": {"name": block.name, "arguments": arguments}})
        elif isinstance(block, ToolResultBlock):
            if block.tool_use_id not in known_ids:
                raise InvalidRequest(
                    f"tool_result refers to tool_use id {block.tool_use_id!r}, which no earlier"
                    " assistant message has",
                    param=f"{field}.tool_use_id",
                )
            results.append(_tool_message(block))
        else:
            assert isinstance(block, ThinkingBlock)
    out = results
    if parts or calls:
        entry: dict[str, Any] = {"role": message.role, "content": parts or None}
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
    return out


def _image_part(block: ImageBlock) -> dict[str, Any]:
    source = block.source
    if source.type == "base64":
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: ToolResultBlock) -> dict[str, Any]:
    if isinstance(block.content, str):
        text = block.content
    else:
        text = "\n".join(b.text for b in block.content if isinstance(b, TextBlock))
    if block.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _tool_choice(body: _MessagesBase) -> dict[str, Any]:
    choice = body.tool_choice
    if choice is None:
        return {}
    if isinstance(choice, ToolChoiceNone):
        return {"tool_choice": "none"}
    fields: dict[str, Any] = {"parallel_tool_calls": not choice.disable_parallel_tool_use}
    if isinstance(choice, ToolChoiceAny):
        fields["tool_choice"] = "required"
    elif isinstance(choice, ToolChoiceTool):
        fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    return fields


# --- the internal result -> Anthropic -----------------------------------------------------------


def _usage(result: GenerationResult | None) -> dict[str, int]:
    if result is None:
        return {"input_tokens": 0, "output_tokens": 0}
    usage = result.usage
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_arguments(call)}


def _message(model: str, content: list[dict[str, Any]], stop: str | None, usage: dict) -> dict:
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


async def messages(request: Request) -> Response:
    body = await parse_json_body(request, MessagesRequest)
    state = request.app.state
    engine: Engine = state.engine
    internal = chat_request(body)
    agent = agent_for_model(engine, state.settings.model_names, body.model)
    keepalive = state.settings.server.keepalive_s
    if agent is None:
        if body.stream:
            turn = await pipeline_turn(state, internal)
            events = _pipeline_events(turn, body.model, keepalive)
            guarded_events = guarded(events, "pipeline messages", failure=_error_event)
            return event_stream_response(guarded_events, {"X-Task-Id": turn.task_id})
        progress, final = await pipeline_answer(state, internal)
        content = [{"type": "thinking", "thinking": progress, "signature": ""}] if progress else []
        content.append({"type": "text", "text": final})
        return JSONResponse(_message(body.model, content, "end_turn", _usage(None)))
    generation = await plan_turn(state, internal)
    if body.stream:
        reply = await engine.reply(agent, generation)
        events = _chat_events(reply, body.model, keepalive)
        return event_stream_response(guarded(events, "messages", reply.aclose, _error_event))
    result = await engine.complete(agent, generation)
    content = [{"type": "text", "text": result.text}] if result.text else []
    content += [_tool_use(call) for call in result.tool_calls]
    stop = STOP_REASONS.get(result.finish_reason, "end_turn")
    return JSONResponse(_message(body.model, content, stop, _usage(result)))


async def count_tokens(request: Request) -> Response:
    body = await parse_json_body(request, CountTokensRequest)
    state = request.app.state
    engine: Engine = state.engine
    agent = agent_for_model(engine, state.settings.model_names, body.model) or "coder"
    generation = await plan_turn(state, chat_request(body))
    return JSONResponse({"input_tokens": await engine.count_tokens(agent, generation)})


# --- streaming -----------------------------------------------------------------------------------


PING = event_line({"type": "ping"})


class _Blocks:
    """Numbers content blocks and opens/closes them around their deltas."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None

    def start(self, block: dict[str, Any]) -> list[bytes]:
        out = self.stop()
        self.index += 1
        self.open = block["type"]
        out.append(
            event_line({"type": "content_block_start", "index": self.index, "content_block": block})
        )
        return out

    def delta(self, delta: dict[str, Any]) -> bytes:
        return event_line({"type": "content_block_delta", "index": self.index, "delta": delta})

    def stop(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [event_line({"type": "content_block_stop", "index": self.index})]


def _head(model: str) -> bytes:
    return event_line({"type": "message_start", "message": _message(model, [], None, _usage(None))})


def _tail(stop: str, usage: dict[str, int]) -> list[bytes]:
    return [
        event_line(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": usage,
            }
        ),
        event_line({"type": "message_stop"}),
    ]


def _error_event(exc: BaseException) -> bytes:
    return event_line(anthropic_error_body(exc)[1])


async def _chat_events(reply: Reply, model: str, keepalive_s: float) -> AsyncIterator[bytes]:
    blocks = _Blocks()
    yield _head(model)
    yield PING
    async for chunk in reply.chunks(keepalive_s):
        if chunk is None:
            yield PING
            continue
        if chunk.content:
            if blocks.open != "text":
                for line in blocks.start({"type": "text", "text": ""}):
                    yield line
            yield blocks.delta({"type": "text_delta", "text": chunk.content})
        for call in chunk.tool_calls:
            for line in blocks.start({**_tool_use(call), "input": {}}):
                yield line
            yield blocks.delta({"type": "input_json_delta", "partial_json": call.arguments})
    for line in blocks.stop():
        yield line
    result = reply.result
    assert result is not None
    for line in _tail(STOP_REASONS.get(result.finish_reason, "end_turn"), _usage(result)):
        yield line


async def _pipeline_events(
    turn: PipelineTurn, model: str, keepalive_s: float
) -> AsyncIterator[bytes]:
    blocks = _Blocks()
    yield _head(model)
    async for item in turn.events(keepalive_s):
        if item is None:
            yield PING
        elif isinstance(item, Reasoning):
            if blocks.open != "thinking":
                for line in blocks.start({"type": "thinking", "thinking": "", "signature": ""}):
                    yield line
            yield blocks.delta({"type": "thinking_delta", "thinking": item.text})
        else:
            if blocks.open == "thinking":
                yield blocks.delta({"type": "signature_delta", "signature": ""})
            for line in blocks.start({"type": "text", "text": ""}):
                yield line
            yield blocks.delta({"type": "text_delta", "text": item})
    for line in blocks.stop():
        yield line
    for line in _tail("end_turn", _usage(None)):
        yield line


ROUTES = [
    Route("/v1/messages", messages, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
]
