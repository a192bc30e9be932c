"""The clients of a load run: N loops, each picking its next request by the plan's mix with its
own seeded RNG, until the duration is up; a 503 is retried only after its Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from breakingwind.measure.loadtest.http_requests import chat_stream, completion, workflow
from breakingwind.measure.loadtest.mcp_call import mcp_call
from breakingwind.measure.loadtest.plan import Kind, LoadPlan
from breakingwind.measure.loadtest.sample import ClientContext, RequestSample

REQUESTS: dict[Kind, Callable[[ClientContext], Awaitable[RequestSample]]] = {
    "chat_stream": chat_stream,
    "completion": completion,
    "mcp_call": mcp_call,
    "workflow": workflow,
}
MAX_RETRY_AFTER_S = 30.0
PAUSE_AFTER_FAILURE_S = 1.0  # a refused connection is not retried in a tight loop


@dataclass
class ClientResults:
    samples: list[RequestSample] = field(default_factory=list)
    progress: dict[int, list[float]] = field(default_factory=dict)  # client -> times


async def run_clients(
    plan: LoadPlan,
    url: str,
    project: Path,
    clock: Callable[[], float],
    run_over: asyncio.Event,
    results: ClientResults,
) -> None:
    """Run `plan.clients` clients until `run_over` is set and each has finished its request;
    their samples go into `results` as they come."""
    await asyncio.gather(
        *(_client(i, plan, url, project, clock, run_over, results) for i in range(plan.clients))
    )


async def _client(
    index: int,
    plan: LoadPlan,
    url: str,
    project: Path,
    clock: Callable[[], float],
    run_over: asyncio.Event,
    results: ClientResults,
) -> None:
    rng = random.Random(f"{plan.seed}:{index}")
    kinds = list(plan.mix)
    weights = [plan.mix[kind] for kind in kinds]
    responses: list[httpx2.Response] = []

    async def keep_mcp_answers(response: httpx2.Response) -> None:
        if response.request.url.path.endswith("/mcp"):
            responses.append(response)

    async with httpx2.AsyncClient(
        timeout=httpx2.Timeout(10.0, read=plan.read_timeout_s),
        event_hooks={"response": [keep_mcp_answers]},
    ) as http:
        ctx = ClientContext(
            index, url, plan, project, http, rng, clock, run_over, responses=responses
        )
        results.progress[index] = ctx.progress
        while not run_over.is_set():
            kind = rng.choices(kinds, weights)[0]
            sample = await REQUESTS[kind](ctx)
            results.samples.append(sample)
            await _pause(sample, run_over)


async def _pause(sample: RequestSample, run_over: asyncio.Event) -> None:
    """Honour Retry-After after back-pressure; pause briefly after a failed connection."""
    if sample.outcome == "backpressure":
        wait = min(_seconds(sample.retry_after), MAX_RETRY_AFTER_S)
    elif sample.outcome == "transport_error":
        wait = PAUSE_AFTER_FAILURE_S
    else:
        return
    try:
        await asyncio.wait_for(run_over.wait(), timeout=wait)
    except TimeoutError:
        pass


def _seconds(retry_after: str | None) -> float:
    try:
        return max(0.0, float(retry_after or 1))
    except ValueError:  # an HTTP date: not sent by the daemon
        return 1.0
