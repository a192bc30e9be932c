"""A small OpenAI-compatible server that misbehaves on request, for the remote backend's failures.

The requested `model` picks the behaviour (see `BEHAVIOURS`); every request's model and
Authorization header are recorded so a test can check what the server was sent. Run in-process
(`build_app()` under `tests.conftest.LiveServer`) or as a subprocess, to be killed mid-stream:
`python -m tests.fake_openai PORT`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

BEHAVIOURS = (
    "ok",  # streams "Hello from fake" and stops
    "flaky-503",  # 503 with Retry-After: 1 on the first request, then ok
    "always-503",  # 503 with Retry-After: 1, always
    "busy-for-an-hour",  # 429 with Retry-After: 3600
    "slow",  # sleeps 5 s before answering
    "garbage",  # a stream whose second chunk is not JSON
    "unfinished",  # a stream that ends without a finish_reason or [DONE]
    "trickle",  # one chunk every 50 ms, for a long time
    "echo-key",  # 401 whose message quotes the Authorization header back
)
TEXT = ["Hello", " from", " fake"]


@dataclass
class Recorded:
    models: list[str] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


async def _ok() -> AsyncIterator[bytes]:
    yield _chunk({"role": "assistant", "content": ""})
    for piece in TEXT:
        yield _chunk({"content": piece})
    yield _chunk({}, "stop")
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"


async def _garbage() -> AsyncIterator[bytes]:
    yield _chunk({"content": "Hello"})
    yield b"data: {this is not json\n\n"


async def _unfinished() -> AsyncIterator[bytes]:
    yield _chunk({"content": "Hello"})


async def _trickle() -> AsyncIterator[bytes]:
    for _ in range(2000):
        yield _chunk({"content": " tick"})
        await asyncio.sleep(0.05)
    yield _chunk({}, "stop")
    yield b"data: [DONE]\n\n"


def _sse(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/event-stream")


def _error(status: int, message: str, retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"message": message, "type": "server_error", "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def build_app(recorded: Recorded | None = None) -> Starlette:
    recorded = recorded if recorded is not None else Recorded()
    seen: dict[str, int] = {}

    async def chat(request: Request) -> Response:
        body = await request.json()
        model = body.get("model", "ok")
        recorded.models.append(model)
        recorded.authorization.append(request.headers.get("authorization"))
        seen[model] = seen.get(model, 0) + 1
        if model == "flaky-503" and seen[model] == 1 or model == "always-503":
            return _error(503, "overloaded, try again", retry_after="1")
        if model == "busy-for-an-hour":
            return _error(429, "rate limited", retry_after="3600")
        if model == "slow":
            await asyncio.sleep(5)
        if model == "echo-key":
            return _error(401, f"invalid key: {request.headers.get('authorization')}")
        streams = {"garbage": _garbage, "unfinished": _unfinished, "trickle": _trickle}
        return _sse(streams.get(model, _ok)())

    async def models(request: Request) -> Response:
        data = [{"id": name, "object": "model", "max_model_len": 4096} for name in BEHAVIOURS]
        return JSONResponse({"object": "list", "data": data})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.recorded = recorded
    return app


if __name__ == "__main__":
    uvicorn.run(build_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
