"""The HTTP kinds of request a load client sends: a streamed chat, a completion, a workflow.

Each returns a `RequestSample` and never raises for what the daemon or the network did: a
timeout is `hung`, a refused connection `transport_error`, an error answer is classified by
`refused` / `stream_error`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2

from breakingwind.measure.loadtest.plan import Kind
from breakingwind.measure.loadtest.project import TASK
from breakingwind.measure.loadtest.sample import (
    ClientContext,
    Outcome,
    RequestSample,
    refused,
    stream_error,
)

MODEL = "breakingwind-coder"
PROMPTS = (
    "Write a Python function that reverses a string.",
    "What does `git rebase -i` do? Answer in two sentences.",
    "Explain a Python list comprehension with one example.",
    "Write a SQL query that counts the rows of a table named users.",
)
CODE_PREFIXES = (
    "def fibonacci(n):\n",
    "class Stack:\n    def __init__(self):\n",
    "def is_prime(n: int) -> bool:\n",
    "import json\n\n\ndef load(path):\n",
)
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled"})
CUT_GRACE_S = 30.0  # a workflow cancelled at the end of the run must end within this
_EXCEPTION_NAME = re.compile(r"^([A-Z]\w+): ")


async def guarded(
    ctx: ClientContext,
    kind: Kind,
    attempt: Callable[[float, asyncio.Timeout], Awaitable[RequestSample]],
) -> RequestSample:
    """Run `attempt(started, limit)` within the kind's timeout; a timeout, a failed connection
    or a malformed answer becomes the sample."""
    started = ctx.clock()
    timeout_s = ctx.plan.timeouts_s[kind]
    try:
        async with asyncio.timeout(timeout_s) as limit:
            return await attempt(started, limit)
    except TimeoutError:
        return ctx.sample(kind, started, "hung", detail=f"no end within {timeout_s:g} s")
    except httpx2.TimeoutException as exc:
        detail = f"{type(exc).__name__} after {ctx.plan.read_timeout_s:g} s of silence"
        return ctx.sample(kind, started, "hung", detail=detail)
    except httpx2.TransportError as exc:
        return ctx.sample(kind, started, "transport_error", detail=type(exc).__name__)
    except (ValueError, KeyError, TypeError) as exc:  # not the answer the API promises
        return ctx.sample(kind, started, "server_error", detail=f"malformed: {exc!r}"[:80])


def stream_timeout(ctx: ClientContext) -> httpx2.Timeout:
    """A stream may wait for its first byte and between bytes at most read_timeout_s."""
    return httpx2.Timeout(10.0, read=ctx.plan.read_timeout_s)


async def chat_stream(ctx: ClientContext) -> RequestSample:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": ctx.rng.choice(PROMPTS)}],
        "max_tokens": ctx.plan.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    async def attempt(started: float, limit: asyncio.Timeout) -> RequestSample:
        url = f"{ctx.url}/v1/chat/completions"
        async with ctx.http.stream("POST", url, json=body, timeout=stream_timeout(ctx)) as answer:
            if answer.status_code != 200:
                outcome, fields = refused(answer, await answer.aread())
                return ctx.sample("chat_stream", started, outcome, **fields)
            return await _read_chat(ctx, answer, started)

    return await guarded(ctx, "chat_stream", attempt)


async def _read_chat(ctx: ClientContext, answer: httpx2.Response, started: float) -> RequestSample:
    ttft, tokens = None, 0
    async for payload in _data_lines(answer):
        if payload == "[DONE]":
            return ctx.sample("chat_stream", started, "ok", status=200, ttft_s=ttft, tokens=tokens)
        chunk = json.loads(payload)
        if "error" in chunk:
            outcome, code = stream_error(chunk["error"])
            return ctx.sample("chat_stream", started, outcome, status=200, detail=code)
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if any(choice["delta"].get("content") for choice in chunk.get("choices", ())):
            ttft = ttft if ttft is not None else ctx.clock() - started
            ctx.advanced()
    return ctx.sample("chat_stream", started, "server_error", status=200, detail="no [DONE]")


async def _data_lines(answer: httpx2.Response) -> AsyncIterator[str]:
    """The `data:` payloads of an SSE answer (keep-alive comments skipped)."""
    async for line in answer.aiter_lines():
        if line.startswith("data: "):
            yield line[len("data: ") :]


async def completion(ctx: ClientContext) -> RequestSample:
    body = {
        "model": MODEL,
        "prompt": ctx.rng.choice(CODE_PREFIXES),
        "max_tokens": ctx.plan.max_tokens,
    }

    async def attempt(started: float, limit: asyncio.Timeout) -> RequestSample:
        # No byte comes before the whole completion: only the kind's timeout bounds it.
        answer = await ctx.http.post(
            f"{ctx.url}/v1/completions", json=body, timeout=ctx.plan.timeouts_s["completion"]
        )
        if answer.status_code != 200:
            outcome, fields = refused(answer, answer.content)
            return ctx.sample("completion", started, outcome, **fields)
        tokens = answer.json()["usage"]["completion_tokens"]
        return ctx.sample("completion", started, "ok", status=200, tokens=tokens)

    return await guarded(ctx, "completion", attempt)


async def workflow(ctx: ClientContext) -> RequestSample:
    """Start a workflow on the load project and follow its event stream to the end; when the run
    ends first, cancel it (POST .../cancel) and follow it to `cancelled`."""
    body = {
        "input": TASK,
        "project": str(ctx.project),
        "options": {"max_review_cycles": 1, "stage_timeout_s": ctx.plan.workflow_stage_timeout_s},
    }

    async def attempt(started: float, limit: asyncio.Timeout) -> RequestSample:
        url = f"{ctx.url}/api/workflow"
        async with ctx.http.stream("POST", url, json=body, timeout=stream_timeout(ctx)) as answer:
            if answer.status_code != 200:
                outcome, fields = refused(answer, await answer.aread())
                return ctx.sample("workflow", started, outcome, **fields)
            task_id = answer.headers["x-task-id"]
            cut = asyncio.Event()
            cutter = asyncio.create_task(_cancel_at_end(ctx, task_id, limit, cut))
            try:
                return await _follow_workflow(ctx, answer, started, cut)
            except BaseException:
                await _cancel(ctx, task_id)  # a hung or broken stream: stop the task
                raise
            finally:
                cutter.cancel()
                await asyncio.gather(cutter, return_exceptions=True)

    return await guarded(ctx, "workflow", attempt)


async def _follow_workflow(
    ctx: ClientContext, answer: httpx2.Response, started: float, cut: asyncio.Event
) -> RequestSample:
    ttft = None
    event = ""
    async for line in answer.aiter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
            ctx.advanced()
            if event == "token" and ttft is None:
                ttft = ctx.clock() - started
        elif line.startswith("data: ") and event in TERMINAL_EVENTS:
            data = json.loads(line[len("data: ") :])
            outcome, detail = _workflow_ending(event, data.get("error") or "", cut.is_set())
            return ctx.sample("workflow", started, outcome, status=200, ttft_s=ttft, detail=detail)
    return ctx.sample("workflow", started, "server_error", status=200, detail="stream cut short")


def _workflow_ending(event: str, error: str, cut: bool) -> tuple[Outcome, str]:
    """A workflow's ending as (outcome, detail). A tiny model's task failing is a normal end;
    only an internal error is the daemon's fault."""
    if event == "cancelled":
        return ("cut" if cut else "ok"), "cancelled"
    if event == "completed":
        return "ok", "completed"
    if error.startswith("internal error"):
        return "server_error", f"failed: {error[:80]}"
    if match := _EXCEPTION_NAME.match(error):
        return "ok", f"failed: {match.group(1)}"
    return "ok", "failed: " + re.sub(r"\s+", " ", re.sub(r"[\d.]+", "N", error))[:60]


async def _cancel_at_end(
    ctx: ClientContext, task_id: str, limit: asyncio.Timeout, cut: asyncio.Event
) -> None:
    await ctx.run_over.wait()
    cut.set()
    deadline = asyncio.get_running_loop().time() + CUT_GRACE_S
    limit.reschedule(min(limit.when() or deadline, deadline))
    await _cancel(ctx, task_id)


async def _cancel(ctx: ClientContext, task_id: str) -> None:
    """Cancel the task; 409 (it had ended already) and network trouble are fine here."""
    try:
        await ctx.http.post(f"{ctx.url}/api/task/{task_id}/cancel", timeout=CUT_GRACE_S)
    except httpx2.HTTPError:
        pass
