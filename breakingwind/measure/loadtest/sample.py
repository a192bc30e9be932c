"""One request's record, the client state every kind of request uses, and how an HTTP error
answer is classified."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx2

from breakingwind.measure.loadtest.plan import Kind, LoadPlan

# ok: answered in full (a workflow: it reached its end, whatever the model made of it);
# backpressure: 503 with Retry-After (documented); client_error: a 4xx or a tool error;
# server_error: any other 5xx, a 503 without Retry-After, or a server error inside a stream;
# hung: the request reached its timeout, or a stream fell silent for read_timeout_s;
# transport_error: the connection failed; cut: a workflow cancelled because the run ended.
Outcome = Literal[
    "ok", "backpressure", "client_error", "server_error", "hung", "transport_error", "cut"
]


@dataclass
class RequestSample:
    client: int
    kind: Kind
    started_s: float  # since the run started
    latency_s: float
    outcome: Outcome
    status: int | None = None
    ttft_s: float | None = None  # streams: until the first generated text
    tokens: int = 0  # generated tokens the daemon reported (usage)
    detail: str = ""  # the error code, exception or workflow ending
    retry_after: str | None = None


@dataclass
class ClientContext:
    """What one simulated client has: its own connection pool, its RNG, the shared clock."""

    index: int
    url: str
    plan: LoadPlan
    project: Path
    http: httpx2.AsyncClient
    rng: random.Random
    clock: Callable[[], float]
    run_over: asyncio.Event  # set when the run's duration is up
    progress: list[float] = field(default_factory=list)  # when this client saw work advance
    responses: list[httpx2.Response] = field(default_factory=list)  # HTTP answers (MCP calls)

    def advanced(self) -> None:
        """Note that work advanced now (kept at most once a second)."""
        now = self.clock()
        if not self.progress or now - self.progress[-1] >= 1.0:
            self.progress.append(now)

    def sample(self, kind: Kind, started: float, outcome: Outcome, **fields: Any) -> RequestSample:
        """The record of a request of `kind` that started at `started` and ends now."""
        self.progress.append(self.clock())
        return RequestSample(self.index, kind, started, self.clock() - started, outcome, **fields)


def error_code(body: bytes) -> str:
    """The `error.code` (else `error.type`) of an OpenAI-shaped error body, or ''."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return ""
    return str(error.get("code") or error.get("type") or "") if isinstance(error, dict) else ""


def refused(response: httpx2.Response, body: bytes) -> tuple[Outcome, dict[str, Any]]:
    """The outcome of a non-2xx answer: back-pressure only when it is a 503 with Retry-After."""
    retry_after = response.headers.get("retry-after")
    code = error_code(body)
    fields: dict[str, Any] = {"status": response.status_code, "retry_after": retry_after}
    if response.status_code == 503 and retry_after:
        return "backpressure", {**fields, "detail": code}
    if response.status_code >= 500:
        missing = " (no Retry-After)" if response.status_code == 503 else ""
        return "server_error", {**fields, "detail": f"{code or response.status_code}{missing}"}
    return "client_error", {**fields, "detail": code or str(response.status_code)}


def stream_error(error: dict[str, object]) -> tuple[Outcome, str]:
    """An error sent inside a 200 stream: a server error unless the request was at fault."""
    code = str(error.get("code") or error.get("type") or "error")
    return ("server_error" if error.get("type") == "server_error" else "client_error"), code
