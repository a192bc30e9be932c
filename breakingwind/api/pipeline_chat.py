"""The model id `breakingwind` on /v1/chat/completions: the whole pipeline behind a chat.

The last user message is the task. Progress streams as `delta.reasoning_content` (IDEs that show
reasoning show the pipeline at work); the final summary and the diff arrive as `delta.content`,
the diff in a ```diff block. The workflow is an ordinary task: it is also visible on /api.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from breakingwind.api.openai_chunks import NO_USAGE, Envelope, chat_completion, guarded
from breakingwind.api.openai_schemas import ChatCompletionRequest
from breakingwind.api.sse import DONE, PING, SSE_HEADERS
from breakingwind.api.workflow_routes import event_stream_items
from breakingwind.errors import InvalidRequest
from breakingwind.pipeline import Pipeline
from breakingwind.progress import final_message, progress_line
from breakingwind.runtime import Runtime
from breakingwind.store import TaskStore
from breakingwind.tasks import TaskState

DISCONNECT_POLL_S = 1.0  # how often a non-streaming pipeline chat checks for a hang-up


async def task_text(runtime: Runtime, body: ChatCompletionRequest) -> str:
    """The last user message, read whole: screenshots and audio reach the task as text."""
    for index in range(len(body.messages) - 1, -1, -1):
        message = body.messages[index]
        if message.role == "user" and message.content:
            root = runtime.settings.project.root
            return await runtime.task_text(message.content, root, f"messages[{index}]")
    raise InvalidRequest("the pipeline needs a user message with the task", param="messages")


async def pipeline_chat(request: Request, body: ChatCompletionRequest) -> Response:
    runtime: Runtime = request.app.state.runtime
    pipeline = runtime.pipeline
    state = pipeline.submit(await task_text(runtime, body), None, None)
    cancel_on_hangup = runtime.settings.pipeline.cancel_chat_on_disconnect
    if not body.stream:
        final = await _wait_while_connected(request, pipeline, state.task_id, cancel_on_hangup)
        message = {"role": "assistant", "content": final_message(final)}
        return JSONResponse(chat_completion(body.model, message, "stop", NO_USAGE))
    chunks = _chunks(
        request.app.state.store, state.task_id, body, request.app.state.settings.server.keepalive_s
    )
    chunks = guarded(chunks, "pipeline chat")
    if cancel_on_hangup:
        chunks = _cancel_when_abandoned(chunks, pipeline, state.task_id)
    return StreamingResponse(
        chunks, media_type="text/event-stream", headers={**SSE_HEADERS, "X-Task-Id": state.task_id}
    )


async def _wait_while_connected(
    request: Request, pipeline: Pipeline, task_id: str, cancel_on_hangup: bool
) -> TaskState:
    """The task's final state; with `cancel_on_hangup`, a client that hangs up first cancels it."""
    done = asyncio.ensure_future(pipeline.wait(task_id))
    while cancel_on_hangup:
        finished, _ = await asyncio.wait({done}, timeout=DISCONNECT_POLL_S)
        if finished:
            break
        if await request.is_disconnected():
            pipeline.cancel_soon(task_id)
            break
    return await done


async def _cancel_when_abandoned(
    chunks: AsyncIterator[bytes], pipeline: Pipeline, task_id: str
) -> AsyncIterator[bytes]:
    """`chunks`, cancelling the task if the stream is closed before it ends (client gone)."""
    finished = False
    try:
        async for chunk in chunks:
            yield chunk
        finished = True
    finally:
        if not finished:
            pipeline.cancel_soon(task_id)


async def _chunks(
    store: TaskStore, task_id: str, body: ChatCompletionRequest, keepalive_s: float
) -> AsyncIterator[bytes]:
    envelope = Envelope(f"chatcmpl-{task_id}", "chat.completion.chunk", body.model)
    yield envelope.chat({"role": "assistant", "content": ""})
    async for event in event_stream_items(store, task_id, 0, keepalive_s):
        if event is None:
            yield PING
            continue
        line = progress_line(event)
        if line:
            yield envelope.chat({"reasoning_content": line})
    yield envelope.chat({"content": final_message(store.get(task_id))})
    yield envelope.chat({}, "stop")
    if body.include_usage:
        yield envelope.usage(NO_USAGE)
    yield DONE
