"""The workflow API: start a task and watch it (SSE with ids), read, list, cancel, apply.

A client that disconnects from a stream does not cancel the task; only POST .../cancel does.
Reconnecting to GET /api/task/{id}/events with `Last-Event-ID` resumes without gaps or
duplicates (events are numbered per task and stored before they are sent).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from breakingwind.api.sse import PING, SSE_HEADERS, parse_json_body
from breakingwind.errors import InvalidRequest
from breakingwind.media import ContentPart
from breakingwind.pipeline import Pipeline
from breakingwind.projects import allowed_project
from breakingwind.runtime import Runtime
from breakingwind.store import SubscriberDropped, TaskStore
from breakingwind.tasks import Event, TaskState, WorkflowOptions

MAX_EVENT_ID = 2**63 - 1  # SQLite's largest integer


class WorkflowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str | list[ContentPart] = Field(
        description="The task: text, or content parts (text, image_url, input_audio)."
    )
    project: str | None = Field(None, description="Project folder (default: project.root).")
    options: WorkflowOptions = Field(default_factory=WorkflowOptions)


def sse_event(event: Event) -> bytes:
    payload = json.dumps(
        {
            "task_id": event.task_id,
            "type": event.type,
            "at": event.created_at.isoformat(),
            **event.data,
        }
    )
    return f"id: {event.seq}\nevent: {event.type}\ndata: {payload}\n\n".encode()


async def event_stream_items(
    store: TaskStore, task_id: str, after: int, keepalive_s: float
) -> AsyncIterator[Event | None]:
    """A task's events from `after` until it ends; None after each `keepalive_s` of silence.

    Raises `SubscriberDropped` when the reader fell too far behind."""
    events = store.follow(task_id, after)
    pending: asyncio.Task[Event] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait((pending,), timeout=keepalive_s)
            if not done:
                yield None
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await events.aclose()


async def event_stream(
    store: TaskStore, task_id: str, after: int, keepalive_s: float
) -> AsyncIterator[bytes]:
    """The SSE bytes of `event_stream_items`: `id:`/`event:`/`data:` blocks and comments."""
    try:
        async for event in event_stream_items(store, task_id, after, keepalive_s):
            yield PING if event is None else sse_event(event)
    except SubscriberDropped:
        yield b": dropped - reconnect with Last-Event-ID\n\n"


def _streaming(request: Request, task_id: str, after: int) -> StreamingResponse:
    state = request.app.state
    stream = event_stream(state.store, task_id, after, state.settings.server.keepalive_s)
    return StreamingResponse(
        stream, media_type="text/event-stream", headers={**SSE_HEADERS, "X-Task-Id": task_id}
    )


async def start_workflow(request: Request) -> Response:
    body = await parse_json_body(request, WorkflowRequest)
    pipeline: Pipeline = request.app.state.pipeline
    runtime: Runtime = request.app.state.runtime
    project = allowed_project(body.project, runtime.settings)  # before any media path is read
    # Media parts are read now (OCR, transcription), so the task survives restarts as text.
    text = await runtime.task_text(body.input, project, "input")
    state = pipeline.submit(text, project, body.options)
    return _streaming(request, state.task_id, 0)


async def task_events(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    request.app.state.store.get(task_id)  # 404 before the stream starts
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    if not _is_decimal(raw) or int(raw) > MAX_EVENT_ID:
        raise InvalidRequest("Last-Event-ID must be an event number", param="Last-Event-ID")
    return _streaming(request, task_id, int(raw))


async def get_task(request: Request) -> Response:
    state: TaskState = request.app.state.store.get(request.path_params["task_id"])
    return JSONResponse(state.model_dump(mode="json"))


async def list_tasks(request: Request) -> Response:
    limit = _int_param(request, "limit", 50, 1, 500)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    tasks, total = request.app.state.store.list(limit, offset)
    return JSONResponse(
        {"tasks": [_summary(t) for t in tasks], "total": total, "limit": limit, "offset": offset}
    )


async def cancel_task(request: Request) -> Response:
    state = await request.app.state.pipeline.cancel(request.path_params["task_id"])
    return JSONResponse(state.model_dump(mode="json"))


async def apply_task(request: Request) -> Response:
    state = await request.app.state.pipeline.apply(request.path_params["task_id"])
    return JSONResponse(state.model_dump(mode="json"))


def _summary(task: TaskState) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "input": task.user_input[:200],
        "project": task.project,
        "stage": task.current_stage,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "error": task.error_message,
    }


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _is_decimal(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}", param=name)
    return int(raw)


def _is_decimal(raw: str) -> bool:
    """ASCII digits only, and few enough to be a number: `str.isdigit()` also accepts '²' and
    '٣', which `int()` then refuses or SQLite cannot hold."""
    return 0 < len(raw) <= 19 and raw.isascii() and raw.isdigit()


ROUTES = [
    Route("/api/workflow", start_workflow, methods=["POST"]),
    Route("/api/tasks", list_tasks, methods=["GET"]),
    Route("/api/task/{task_id}", get_task, methods=["GET"]),
    Route("/api/task/{task_id}/events", task_events, methods=["GET"]),
    Route("/api/task/{task_id}/cancel", cancel_task, methods=["POST"]),
    Route("/api/task/{task_id}/apply", apply_task, methods=["POST"]),
]
