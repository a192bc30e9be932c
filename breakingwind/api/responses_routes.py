"""OpenAI's Responses API (Codex CLI, the Agents SDK): POST /v1/responses.

A thin translation: `instructions` and the `input` items (messages, function_call,
function_call_output) become the internal chat request (`ChatCompletionRequest`) and run through
the same core as /v1/chat/completions (`chat_core`); the answer is shaped as a Response object or
its event stream (response.created, response.output_item.added, response.output_text.delta,
response.function_call_arguments.delta, response.output_item.done, response.completed, ...).
The pipeline model streams its progress as a reasoning item and its summary as a message.
Nothing is stored: clients that continue a conversation send its items again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from breakingwind.api.chat_core import (
    PipelineTurn,
    Reasoning,
    internal_request,
    pipeline_answer,
    pipeline_turn,
    plan_turn,
)
from breakingwind.api.errors import error_body
from breakingwind.api.model_names import agent_for_model
from breakingwind.api.openai_chunks import guarded, token_logprobs
from breakingwind.api.openai_schemas import ChatCompletionRequest
from breakingwind.api.responses_schemas import NamedFunctionChoice, ResponsesRequest
from breakingwind.api.sse import PING, event_line, event_stream_response, parse_json_body
from breakingwind.engine import Engine, GenerationResult
from breakingwind.engine.output import Reply
from breakingwind.engine.tool_calls import ToolCall
from breakingwind.errors import InvalidRequest

# Sampling options the Responses API lacks but which we take there too, as on chat completions.
SAMPLING_EXTENSIONS = (
    "seed",
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
)
IGNORED_ITEMS = frozenset({"reasoning", "item_reference"})


# --- Responses -> the internal request ----------------------------------------------------------


def chat_request(body: ResponsesRequest) -> ChatCompletionRequest:
    """The internal request for a Responses body; an output naming no earlier call is a 400
    naming the field."""
    if body.previous_response_id is not None:
        raise InvalidRequest(
            "previous_response_id is not supported: responses are not stored; send the whole"
            " conversation in input",
            param="previous_response_id",
        )
    messages: list[dict[str, Any]] = []
    if body.instructions:
        messages.append({"role": "system", "content": body.instructions})
    if isinstance(body.input, str):
        messages.append({"role": "user", "content": body.input})
    else:
        known_ids: set[str] = set()
        for i, item in enumerate(body.input):
            _add_item(messages, item, f"input[{i}]", known_ids)
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "stream": body.stream,
        "max_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "parallel_tool_calls": body.parallel_tool_calls,
    }
    if body.wants_logprobs:
        fields.update(logprobs=True, top_logprobs=body.top_logprobs or 0)
    extra = body.model_extra or {}
    fields.update({name: extra[name] for name in SAMPLING_EXTENSIONS if name in extra})
    tools = [_function_tool(tool, f"tools[{i}]") for i, tool in enumerate(body.tools or [])]
    if any(tools):
        fields["tools"] = [tool for tool in tools if tool]
        choice = body.tool_choice
        if isinstance(choice, NamedFunctionChoice):
            fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            fields["tool_choice"] = choice
    fmt = body.text.format if body.text else None
    if fmt is not None and fmt.type == "json_object":
        fields["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.schema_ is None:
            raise InvalidRequest("text.format json_schema needs a schema", "text.format.schema")
        schema = {"name": fmt.name, "schema": fmt.schema_, "strict": fmt.strict}
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    return internal_request(fields)


def _function_tool(tool: dict[str, Any], where: str) -> dict[str, Any] | None:
    """A function tool in chat shape; built-in tools (web_search, ...) are not offered."""
    kind = tool.get("type")
    if kind != "function":
        return None
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("a function tool needs a name", param=f"{where}.name")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _add_item(
    messages: list[dict[str, Any]], item: dict[str, Any], where: str, known_ids: set[str]
) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(f"unknown message role {role!r}", param=f"{where}.role")
        messages.append({"role": role, "content": _content(item.get("content"), where)})
    elif kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest("a function_call needs a call_id", param=f"{where}.call_id")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("a function_call needs a name", param=f"{where}.name")
        known_ids.add(call_id)
        call = {"id": call_id, "function": {"name": name, "arguments": item.get("arguments", "")}}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        call_id = item.get("call_id")
        if call_id not in known_ids:
            raise InvalidRequest(
                f"function_call_output refers to call_id {call_id!r}, which no earlier"
                " function_call in input has",
                param=f"{where}.call_id",
            )
        output = item.get("output", "")
        text = output if isinstance(output, str) else _content(output, f"{where}.output")
        messages.append({"role": "tool", "tool_call_id": call_id, "content": text or ""})
    elif kind not in IGNORED_ITEMS:
        raise InvalidRequest(f"input items of type {kind!r} are not supported", f"{where}.type")


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """Message content: a string, or input_text/output_text/input_image parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("content must be a string or a list of parts", f"{where}.content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            parts.append({"type": "text", "text": part.get("text") or part.get("refusal") or ""})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise InvalidRequest(
                f"content parts of type {kind!r} are not supported", f"{where}.content[{j}].type"
            )
    return parts


# --- the internal result -> Responses ----------------------------------------------------------


def _usage(result: GenerationResult | None) -> dict[str, Any]:
    prompt = result.usage.prompt_tokens if result else 0
    output = result.usage.completion_tokens if result else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": result.usage.cached_tokens if result else 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


class _Response:
    """The Response object being built, and the numbered events that announce it."""

    def __init__(self, body: ResponsesRequest) -> None:
        self.body = body
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created_at = int(time.time())
        self.output: list[dict[str, Any]] = []
        self.sequence = 0

    def snapshot(self, status: str, usage: dict[str, Any] | None = None, **extra: Any) -> dict:
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": body.model,
            "output": self.output,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": body.reasoning or {"effort": None, "summary": None},
            "store": False,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {"format": {"type": "text"}},
            "tool_choice": _dumped(body.tool_choice) or "auto",
            "tools": body.tools or [],
            "truncation": "disabled",
            "metadata": {},
            "error": None,
            "incomplete_details": None,
            "usage": usage,
            **extra,
        }

    def finished(self, result: GenerationResult | None) -> dict[str, Any]:
        if result is not None and result.finish_reason == "length":
            details = {"reason": "max_output_tokens"}
            return self.snapshot("incomplete", _usage(result), incomplete_details=details)
        return self.snapshot("completed", _usage(result))

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event_line(payload)


def _dumped(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _message_item(
    text: str, status: str = "completed", logprobs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}]
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content if text or status == "completed" else [],
    }


def _call_item(call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "id": f"fc_{uuid.uuid4().hex}",
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
    }


def _reasoning_item(text: str) -> dict[str, Any]:
    return {
        "id": f"rs_{uuid.uuid4().hex}",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


async def responses(request: Request) -> Response:
    body = await parse_json_body(request, ResponsesRequest)
    internal = chat_request(body)
    state = request.app.state
    engine: Engine = state.engine
    agent = agent_for_model(engine, state.settings.model_names, body.model)
    keepalive = state.settings.server.keepalive_s
    response = _Response(body)
    if agent is None:
        if body.stream:
            turn = await pipeline_turn(state, internal)
            events = guarded(
                _pipeline_events(turn, response, keepalive),
                "pipeline responses",
                failure=lambda exc: _failure(response, exc),
            )
            return event_stream_response(events, {"X-Task-Id": turn.task_id})
        progress, final = await pipeline_answer(state, internal)
        response.output += [_reasoning_item(progress)] if progress else []
        response.output.append(_message_item(final))
        return JSONResponse(response.finished(None))
    generation = await plan_turn(state, internal)
    if body.stream:
        reply = await engine.reply(agent, generation)
        events = guarded(
            _chat_events(reply, response, keepalive),
            "responses",
            reply.aclose,
            lambda exc: _failure(response, exc),
        )
        return event_stream_response(events)
    result = await engine.complete(agent, generation)
    if result.text or not result.tool_calls:
        logprobs = token_logprobs(result.logprobs or [])
        response.output.append(_message_item(result.text, logprobs=logprobs))
    response.output += [_call_item(call) for call in result.tool_calls]
    return JSONResponse(response.finished(result))


# --- streaming -----------------------------------------------------------------------------------


class _TextItem:
    """An output item of text (a message, or reasoning) streamed delta by delta."""

    def __init__(self, response: _Response, kind: str) -> None:
        self.response = response
        self.kind = kind  # "message" or "reasoning"
        self.parts: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        self.index = len(response.output)
        self.item = _message_item("", "in_progress") if kind == "message" else _reasoning_item("")
        if kind == "reasoning":
            self.item["content"] = []
        response.output.append(self.item)

    def open(self) -> list[bytes]:
        r, part = self.response, self._part("")
        return [
            r.event("response.output_item.added", output_index=self.index, item=self.item),
            r.event("response.content_part.added", part=part, **self._where()),
        ]

    def delta(self, text: str, logprobs: list[dict[str, Any]] | None = None) -> bytes:
        self.parts.append(text)
        if self.kind == "message":
            self.logprobs += logprobs or []
            return self.response.event(
                "response.output_text.delta", delta=text, logprobs=logprobs or [], **self._where()
            )
        return self.response.event("response.reasoning_text.delta", delta=text, **self._where())

    def close(self) -> list[bytes]:
        r, text = self.response, "".join(self.parts)
        part = self._part(text)
        done_kind = "output_text" if self.kind == "message" else "reasoning_text"
        extra = {"logprobs": self.logprobs} if self.kind == "message" else {}
        self.item["content"] = [part]
        if self.kind == "message":
            self.item["status"] = "completed"
        return [
            r.event(f"response.{done_kind}.done", text=text, **extra, **self._where()),
            r.event("response.content_part.done", part=part, **self._where()),
            r.event("response.output_item.done", output_index=self.index, item=self.item),
        ]

    def _part(self, text: str) -> dict[str, Any]:
        if self.kind == "message":
            logprobs = self.logprobs if text else []
            return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}
        return {"type": "reasoning_text", "text": text}

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.item["id"], "output_index": self.index, "content_index": 0}


def _call_events(response: _Response, call: ToolCall) -> list[bytes]:
    index = len(response.output)
    item = _call_item(call, "in_progress")
    response.output.append(item)
    where = {"item_id": item["id"], "output_index": index}
    events = [
        response.event("response.output_item.added", output_index=index, item=dict(item)),
        response.event("response.function_call_arguments.delta", delta=call.arguments, **where),
        response.event("response.function_call_arguments.done", arguments=call.arguments, **where),
    ]
    item.update(status="completed", arguments=call.arguments)
    events.append(response.event("response.output_item.done", output_index=index, item=item))
    return events


def _opening(response: _Response) -> list[bytes]:
    return [
        response.event("response.created", response=response.snapshot("in_progress")),
        response.event("response.in_progress", response=response.snapshot("in_progress")),
    ]


def _failure(response: _Response, exc: BaseException) -> bytes:
    """An `error` event, then `response.failed` (what Codex reads)."""
    _, body, _ = error_body(exc)
    error = body["error"]
    return b"".join(
        [
            response.event(
                "error", code=error["code"], message=error["message"], param=error["param"]
            ),
            response.event(
                "response.failed",
                response=response.snapshot(
                    "failed",
                    error={"code": error["code"] or "server_error", "message": error["message"]},
                ),
            ),
        ]
    )


async def _chat_events(
    reply: Reply, response: _Response, keepalive_s: float
) -> AsyncIterator[bytes]:
    text: _TextItem | None = None
    for line in _opening(response):
        yield line
    async for chunk in reply.chunks(keepalive_s):
        if chunk is None:
            yield PING
            continue
        if chunk.content:
            if text is None:
                text = _TextItem(response, "message")
                for line in text.open():
                    yield line
            yield text.delta(chunk.content, token_logprobs(chunk.logprobs))
        for call in chunk.tool_calls:
            if text is not None:
                for line in text.close():
                    yield line
                text = None
            for line in _call_events(response, call):
                yield line
    if text is not None:
        for line in text.close():
            yield line
    assert reply.result is not None
    finished = response.finished(reply.result)
    kind = "response.incomplete" if finished["status"] == "incomplete" else "response.completed"
    yield response.event(kind, response=finished)


async def _pipeline_events(
    turn: PipelineTurn, response: _Response, keepalive_s: float
) -> AsyncIterator[bytes]:
    reasoning: _TextItem | None = None
    for line in _opening(response):
        yield line
    async for item in turn.events(keepalive_s):
        if item is None:
            yield PING
        elif isinstance(item, Reasoning):
            if reasoning is None:
                reasoning = _TextItem(response, "reasoning")
                for line in reasoning.open():
                    yield line
            yield reasoning.delta(item.text)
        else:
            if reasoning is not None:
                for line in reasoning.close():
                    yield line
            message = _TextItem(response, "message")
            for line in [*message.open(), message.delta(item), *message.close()]:
                yield line
    yield response.event("response.completed", response=response.finished(None))


ROUTES = [Route("/v1/responses", responses, methods=["POST"])]
