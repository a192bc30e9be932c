"""The OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions.

Model ids: `breakingwind-<agent>` (or the bare agent name) chats directly with that agent's model;
`breakingwind` is the whole pipeline.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from breakingwind.agents.preprocessor import render_material
from breakingwind.api.errors import sse_error
from breakingwind.api.model_names import agent_for_model, get_model, list_models
from breakingwind.api.openai_schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    Message,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
)
from breakingwind.api.pipeline_chat import pipeline_chat
from breakingwind.api.sse import DONE, PING, SSE_HEADERS, data_line, parse_json_body
from breakingwind.engine import Engine, GenerationRequest, GenerationResult, GenerationStream
from breakingwind.engine.grammars import JSON_OBJECT_GRAMMAR, json_schema_grammar
from breakingwind.engine.tool_calls import ParsedDelta, ToolCall, ToolCallParser
from breakingwind.errors import (
    BreakingWindError,
    GrammarError,
    InvalidRequest,
    MediaError,
    StructuredOutputError,
)
from breakingwind.media import MediaService
from breakingwind.prompts import render_prompt

log = logging.getLogger(__name__)


# --- chat ----------------------------------------------------------------------------------


class OutputCheck:
    """Validates JSON output requested through `response_format`."""

    def __init__(self, schema: dict[str, Any] | None) -> None:
        self.schema = schema
        self._validator = jsonschema.Draft202012Validator(schema) if schema else None

    @property
    def json_schema(self) -> dict[str, Any]:
        """The schema to ask a remote server for (any JSON object when none was given)."""
        return self.schema if self.schema is not None else {"type": "object"}

    def problems(self, text: str) -> str | None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"not valid JSON: {exc}"
        if self._validator is None:
            return None if isinstance(value, dict) else "expected a JSON object"
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if not errors:
            return None
        return "; ".join(
            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]
        )


async def _content_text(
    message: Message, index: int, media: MediaService, project_root: Path
) -> str | None:
    """Message content as text: text parts joined; images and audio read by the media service
    (OCR, transcription) and written out under headings, exactly as the preprocessor sees them."""
    if message.content is None or isinstance(message.content, str):
        return message.content
    if all(part.type == "text" for part in message.content):
        return "".join(part.text for part in message.content)  # type: ignore[union-attr]
    parts = [part.model_dump(by_alias=True, exclude_none=True) for part in message.content]
    try:
        material = await media.parts_to_text(parts, project_root)
    except MediaError as exc:
        exc.param = f"messages[{index}].{exc.param}" if exc.param else f"messages[{index}]"
        raise
    return render_material(material) if material.has_media else material.typed_text


async def _engine_messages(
    messages: list[Message], media: MediaService, project_root: Path
) -> list[dict[str, Any]]:
    out = []
    for i, message in enumerate(messages):
        entry: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": await _content_text(message, i, media, project_root),
        }
        if message.tool_calls:
            entry["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        if message.tool_call_id:
            entry["tool_call_id"] = message.tool_call_id
        if message.name:
            entry["name"] = message.name
        out.append(entry)
    return out


def _chat_request(
    body: ChatCompletionRequest, messages: list[dict[str, Any]]
) -> tuple[GenerationRequest, OutputCheck | None]:
    """The engine request for `body`, and the output check its response_format asks for."""
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
    grammar, check = None, None
    fmt = body.response_format
    if isinstance(fmt, ResponseFormatJsonObject | ResponseFormatJsonSchema):
        if tools and choice != "none":
            raise InvalidRequest(
                "response_format json output cannot be combined with tools",
                param="response_format",
            )
        grammar, check = _json_output(fmt)
    request = GenerationRequest(
        messages=messages,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=body.stops,
        grammar=grammar,
        json_schema=check.json_schema if check else None,
        tools=tools if choice != "none" else None,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        ignore_eos=body.ignore_eos,
        **body.sampling(),
    )
    return request, check


def _json_output(
    fmt: ResponseFormatJsonObject | ResponseFormatJsonSchema,
) -> tuple[str, OutputCheck]:
    if isinstance(fmt, ResponseFormatJsonObject):
        return JSON_OBJECT_GRAMMAR, OutputCheck(None)
    schema = fmt.json_schema.schema_
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
        grammar = json_schema_grammar(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequest(
            f"invalid JSON schema: {exc.message}", param="response_format.json_schema.schema"
        ) from None
    except Exception as exc:  # the grammar converter raises bare errors on unsupported schemas
        raise GrammarError(f"unsupported JSON schema: {exc}") from None
    return grammar, OutputCheck(schema)


async def _complete_checked(
    engine: Engine, agent: str, request: GenerationRequest, check: OutputCheck | None
) -> GenerationResult:
    """Generate; JSON output that fails its check is sent back once, then it is an error.

    Output cut off by max_tokens is returned as it is, with finish_reason "length", as OpenAI
    does: the caller chose the limit.
    """
    result = await engine.complete(agent, request)
    if check is None or result.finish_reason == "length":
        return result
    if (problem := check.problems(result.text)) is None:
        return result
    assert request.messages is not None
    retry = GenerationRequest(
        **{
            **request.__dict__,
            "messages": [
                *request.messages,
                {"role": "assistant", "content": result.text},
                {
                    "role": "user",
                    "content": render_prompt(
                        "structured_retry.md", schema_name="response_format", errors=problem
                    ),
                },
            ],
        }
    )
    result = await engine.complete(agent, retry)
    if (problem := check.problems(result.text)) is not None:
        raise StructuredOutputError(
            f"output did not match response_format: {problem}", raw_output=result.text
        )
    return result


def _usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "total_tokens": result.usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": result.usage.cached_tokens},
    }


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
    messages = await _engine_messages(body.messages, state.media, state.settings.project.root)
    generation, check = _chat_request(body, messages)
    if body.stream:
        stream = await engine.stream(agent, generation)
        chunks = _chat_chunks(stream, body, check, request.app.state.settings.server.keepalive_s)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
    result = await _complete_checked(engine, agent, generation, check)
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = _tool_calls_json(result.tool_calls)
    elif message["content"] is None:
        message["content"] = ""
    return JSONResponse(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": _usage(result),
        }
    )


async def _chat_chunks(
    stream: GenerationStream,
    body: ChatCompletionRequest,
    check: OutputCheck | None,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return data_line(
            {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    parser = ToolCallParser(stream.tool_format) if stream.tool_format else None
    text: list[str] = []
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for item in stream.deltas(keepalive_s):
            if item is None:
                yield PING
                continue
            text.append(item)
            if parser is None:
                yield chunk({"content": item})
                continue
            for part in _parsed_chunks(parser.feed(item), chunk):
                yield part
        if parser is not None:
            for part in _parsed_chunks(parser.finish(), chunk):
                yield part
        result = stream.result
        assert result is not None
        # A backend that receives calls as such (a remote server) hands them over in the result.
        for part in _parsed_chunks(ParsedDelta(calls=result.tool_calls), chunk):
            yield part
        checked = check is not None and result.finish_reason != "length"
        if checked and (problem := check.problems("".join(text))) is not None:
            raise StructuredOutputError(
                f"output did not match response_format: {problem}", raw_output="".join(text)
            )
        called = (parser is not None and parser.calls) or result.tool_calls
        finish = "tool_calls" if called else result.finish_reason
        yield chunk({}, finish)
        if body.include_usage:
            yield data_line({**head, "choices": [], "usage": _usage(result)})
        yield DONE
    except BreakingWindError as exc:
        yield sse_error(exc)
    except Exception as exc:
        log.exception("chat stream failed")
        yield sse_error(exc)
    finally:
        await stream.aclose()


def _parsed_chunks(parsed: Any, chunk: Any) -> list[bytes]:
    out = []
    if parsed.content:
        out.append(chunk({"content": parsed.content}))
    for call in parsed.calls:
        out.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": call.index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        out.append(
            chunk(
                {"tool_calls": [{"index": call.index, "function": {"arguments": call.arguments}}]}
            )
        )
    return out


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
        **body.sampling(),
    )
    head = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": body.model,
    }
    stream = await engine.stream(agent, generation)
    if body.stream:
        keepalive = request.app.state.settings.server.keepalive_s
        chunks = _completion_chunks(stream, head, body, prompt, keepalive)
        return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE_HEADERS)
    async with stream:
        result = await stream.collect()
    text = prompt + result.text if body.echo else result.text
    return JSONResponse(
        {
            **head,
            "choices": [
                {"index": 0, "text": text, "logprobs": None, "finish_reason": result.finish_reason}
            ],
            "usage": _usage(result),
        }
    )


async def _completion_chunks(
    stream: GenerationStream,
    head: dict[str, Any],
    body: CompletionRequest,
    prompt: str,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    def chunk(text: str, finish: str | None = None) -> bytes:
        return data_line(
            {
                **head,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            }
        )

    try:
        if body.echo:
            yield chunk(prompt)
        async for item in stream.deltas(keepalive_s):
            yield PING if item is None else chunk(item)
        result = stream.result
        assert result is not None
        yield chunk("", result.finish_reason)
        if body.include_usage:
            yield data_line({**head, "choices": [], "usage": _usage(result)})
        yield DONE
    except BreakingWindError as exc:
        yield sse_error(exc)
    except Exception as exc:
        log.exception("completion stream failed")
        yield sse_error(exc)
    finally:
        await stream.aclose()


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
]
