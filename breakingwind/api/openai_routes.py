"""The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions.

Model ids: `breakingwind-<agent>` (or the bare agent name) chats directly with that agent's model;
`breakingwind` is the whole pipeline.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from breakingwind.api.chat_core import plan_turn
from breakingwind.api.model_names import agent_for_model, get_model, list_models
from breakingwind.api.openai_chunks import (
    Envelope,
    chat_completion,
    chat_logprobs,
    guarded,
    text_logprobs,
    usage_json,
)
from breakingwind.api.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
)
from breakingwind.api.pipeline_chat import pipeline_chat
from breakingwind.api.sse import DONE, PING, SSE_HEADERS, parse_json_body
from breakingwind.engine import Engine, GenerationRequest, GenerationStream
from breakingwind.engine.output import Reply
from breakingwind.engine.types import ToolCall
from breakingwind.errors import (
    InvalidRequest,
)

log = logging.getLogger(__name__)


# --- chat ----------------------------------------------------------------------------------


def _tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


async def chat_completions(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    body = await parse_json_body(request, ChatCompletionRequest)
    agent = agent_for_model(engine, request.app.state.settings.model_names, body.model)
    if agent is None:
        return await pipeline_chat(request, body)
    state = request.app.state
    generation = await plan_turn(state, body)
    keepalive_s = state.settings.server.keepalive_s
    if body.stream:
        reply = await engine.reply(agent, generation)
        envelope = Envelope(f"chatcmpl-{uuid.uuid4().hex}", "chat.completion.chunk", body.model)
        chunks = guarded(_chat_chunks(reply, envelope, body, keepalive_s), "chat", reply.aclose)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
    result = await engine.complete(agent, generation)
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = _tool_calls_json(result.tool_calls)
    elif message["content"] is None:
        message["content"] = ""
    logprobs = chat_logprobs(result.logprobs or []) if body.logprobs else None
    return JSONResponse(
        chat_completion(body.model, message, result.finish_reason, result.usage, logprobs)
    )


async def _chat_chunks(
    reply: Reply, envelope: Envelope, body: ChatCompletionRequest, keepalive_s: float
) -> AsyncIterator[bytes]:
    yield envelope.chat({"role": "assistant", "content": ""})
    async for chunk in reply.chunks(keepalive_s):
        if chunk is None:
            yield PING
            continue
        logprobs = chat_logprobs(chunk.logprobs) if body.logprobs else None
        if chunk.content or (logprobs and chunk.logprobs):
            yield envelope.chat({"content": chunk.content} if chunk.content else {}, None, logprobs)
        for call in chunk.tool_calls:
            head = {"index": call.index, "id": call.id, "type": "function"}
            yield envelope.chat(
                {"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]}
            )
            yield envelope.chat(
                {"tool_calls": [{"index": call.index, "function": {"arguments": call.arguments}}]}
            )
    assert reply.result is not None
    yield envelope.chat({}, reply.result.finish_reason)
    if body.include_usage:
        yield envelope.usage(reply.result.usage)
    yield DONE


# --- completions ---------------------------------------------------------------------------


async def completions(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    body = await parse_json_body(request, CompletionRequest)
    agent = agent_for_model(engine, request.app.state.settings.model_names, body.model)
    if agent is None:
        raise InvalidRequest(
            "use an agent model (e.g. 'breakingwind-coder') for completions", param="model"
        )
    if isinstance(body.prompt, list):
        if len(body.prompt) != 1:
            raise InvalidRequest("exactly one prompt per request is supported", param="prompt")
        prompt = body.prompt[0]
    else:
        prompt = body.prompt
    generation = GenerationRequest(
        prompt=prompt,
        suffix=body.suffix,
        max_tokens=body.max_tokens,
        stop=body.stops,
        logprobs=body.logprobs,
        **body.sampling(),
    )
    envelope = Envelope(f"cmpl-{uuid.uuid4().hex}", "text_completion", body.model)
    stream = await engine.stream(agent, generation)
    if body.stream:
        keepalive = request.app.state.settings.server.keepalive_s
        chunks = _completion_chunks(stream, envelope, body, prompt, keepalive)
        return StreamingResponse(
            guarded(chunks, "completion", stream.aclose),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )
    async with stream:
        result = await stream.collect()
    text = prompt + result.text if body.echo else result.text
    logprobs = None
    if body.logprobs is not None:
        logprobs = text_logprobs(result.logprobs or [], len(prompt) if body.echo else 0)
    choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": result.finish_reason}
    return JSONResponse({**envelope.head, "choices": [choice], "usage": usage_json(result.usage)})


async def _completion_chunks(
    stream: GenerationStream,
    envelope: Envelope,
    body: CompletionRequest,
    prompt: str,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    offset = 0
    if body.echo:
        yield envelope.text(prompt)
        offset = len(prompt)
    async for item in stream.deltas(keepalive_s):
        if item is None:
            yield PING
            continue
        logprobs = None
        if body.logprobs is not None:
            logprobs = text_logprobs(stream.take_logprobs(), offset)
            offset += sum(len(token) for token in logprobs["tokens"])
        yield envelope.text(item, None, logprobs)
    result = stream.result
    assert result is not None
    yield envelope.text("", result.finish_reason)
    if body.include_usage:
        yield envelope.usage(result.usage)
    yield DONE


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
