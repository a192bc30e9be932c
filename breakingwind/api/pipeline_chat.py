"""The model id `breakingwind` on /v1/chat/completions: the whole pipeline behind a chat.

The last user message is the task. Progress streams as `delta.reasoning_content` (IDEs that show
reasoning show the pipeline at work); the final summary and the diff arrive as `delta.content`,
the diff in a ```diff block. The workflow is an ordinary task: it is also visible on /api.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from breakingwind.api.errors import sse_error
from breakingwind.api.openai_schemas import ChatCompletionRequest
from breakingwind.api.sse import DONE, PING, SSE_HEADERS, data_line
from breakingwind.api.workflow_routes import event_stream_items
from breakingwind.errors import BreakingWindError, InvalidRequest
from breakingwind.pipeline import Pipeline
from breakingwind.progress import final_message, progress_line
from breakingwind.store import TaskStore


def task_text(body: ChatCompletionRequest) -> str:
    """The pipeline's task: the last user message's text."""
    for message in reversed(body.messages):
        if message.role == "user":
            if isinstance(message.content, str):
                return message.content
            if message.content:
                return "".join(p.text for p in message.content if p.type == "text")  # type: ignore[union-attr]
    raise InvalidRequest("the pipeline needs a user message with the task", param="messages")


async def pipeline_chat(request: Request, body: ChatCompletionRequest) -> Response:
    pipeline: Pipeline = request.app.state.pipeline
    state = pipeline.submit(task_text(body), None, None)
    if not body.stream:
        final = await pipeline.wait(state.task_id)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "logprobs": None,
                        "message": {"role": "assistant", "content": final_message(final)},
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )
    chunks = _chunks(
        request.app.state.store, state.task_id, body, request.app.state.settings.server.keepalive_s
    )
    return StreamingResponse(
        chunks, media_type="text/event-stream", headers={**SSE_HEADERS, "X-Task-Id": state.task_id}
    )


async def _chunks(
    store: TaskStore, task_id: str, body: ChatCompletionRequest, keepalive_s: float
) -> AsyncIterator[bytes]:
    head = {
        "id": f"chatcmpl-{task_id}",
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

    try:
        yield chunk({"role": "assistant", "content": ""})
        async for event in event_stream_items(store, task_id, 0, keepalive_s):
            if event is None:
                yield PING
                continue
            line = progress_line(event)
            if line:
                yield chunk({"reasoning_content": line})
        yield chunk({"content": final_message(store.get(task_id))})
        yield chunk({}, "stop")
        if body.include_usage:
            yield data_line(
                {
                    **head,
                    "choices": [],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                }
            )
        yield DONE
    except BreakingWindError as exc:
        yield sse_error(exc)
