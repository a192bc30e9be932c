"""The model id `breakingwind` on /v1/chat/completions: the whole pipeline behind a chat.

The last user message is the task. Progress streams as `delta.reasoning_content` (IDEs that show
reasoning show the pipeline at work); the final summary and the diff arrive as `delta.content`,
the diff in a ```diff block. The workflow is an ordinary task: it is also visible on /api.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from breakingwind.api.errors import sse_error
from breakingwind.api.openai_schemas import ChatCompletionRequest
from breakingwind.api.sse import DONE, PING, SSE_HEADERS, data_line
from breakingwind.api.workflow_routes import event_stream_items
from breakingwind.errors import BreakingWindError, InvalidRequest
from breakingwind.pipeline import Pipeline
from breakingwind.store import TaskStore
from breakingwind.tasks import Event, TaskState


def _progress_line(event: Event) -> str:
    """One line of reasoning text per event (tokens pass through as they are)."""
    data = event.data
    renderers: dict[str, Callable[[], str]] = {
        "task_created": lambda: f"Task {data['task_id']} started.\n",
        "stage_started": lambda: (
            f"\n▶ {data['stage']}"
            + (f" (cycle {data['cycle']})" if data.get("cycle") else "")
            + "\n"
        ),
        "token": lambda: data["text"],
        "tool_call": lambda: (
            f"\n  ↳ {data['agent']} called {data['name']}"
            f"({', '.join(f'{k}={v!r}' for k, v in data['arguments'].items())})\n"
        ),
        "plan": lambda: (
            "\nPlan:\n"
            + "".join(
                f"  {i + 1}. {step['description']}\n"
                for i, step in enumerate(data["plan"]["task_breakdown"])
            )
        ),
        "diff": lambda: (
            f"\nDiff {data['iteration']} applied to {', '.join(data['files'])}\n"
            if data["applied"]
            else f"\nDiff {data['iteration']} rejected: {(data['error'] or '')[:300]}\n"
        ),
        "test_results": lambda: (
            f"\nTests ({data['runner']}): {data['passed']} passed,"
            f" {data['failed']} failed, {data['errors']} errors\n"
        ),
        "review": lambda: (
            f"\nReview: {data['review_status']}"
            + "".join(f"\n  - {issue}" for issue in data.get("issues_found", []))
            + "\n"
        ),
        "escalated": lambda: f"\nEscalated to the planner: {data['reason']}\n",
        "resumed": lambda: f"\nResumed at {data['stage']} after a restart.\n",
    }
    render = renderers.get(event.type)
    return render() if render else ""


def final_message(state: TaskState) -> str:
    report = state.final_output
    if state.current_stage == "cancelled":
        return "The task was cancelled."
    if report is None:
        return f"The task ended: {state.error_message or state.current_stage}."
    text = report.summary
    if report.open_issues:
        text += "\n\nOpen issues:\n" + "\n".join(f"- {issue}" for issue in report.open_issues)
    if report.diff.strip():
        text += f"\n\n```diff\n{report.diff.rstrip()}\n```"
    return text + f"\n\n(task {state.task_id})"


def _task_text(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            if isinstance(message.content, str):
                return message.content
            if message.content:
                return "".join(p.text for p in message.content if p.type == "text")  # type: ignore[union-attr]
    raise InvalidRequest("the pipeline needs a user message with the task", param="messages")


async def pipeline_chat(request: Request, body: ChatCompletionRequest) -> Response:
    pipeline: Pipeline = request.app.state.pipeline
    state = pipeline.submit(_task_text(body), None, None)
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
            line = _progress_line(event)
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
