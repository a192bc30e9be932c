"""The MCP kind of request: connect to /mcp with the official `mcp` SDK client (Streamable HTTP),
call one read-only tool, disconnect, as an IDE session that comes and goes.

Half the clients speak the handshake era (`initialize`, a session id, DELETE at the end), half
the 2026-07-28 protocol. The SDK does not say which HTTP status failed a call, so the client's
own response hook keeps every answer, and any 5xx among them decides the outcome.
"""

from __future__ import annotations

import asyncio

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from breakingwind.measure.loadtest.http_requests import guarded
from breakingwind.measure.loadtest.project import TOOL_CALLS
from breakingwind.measure.loadtest.sample import ClientContext, Outcome, RequestSample

MODES = ("legacy", "2026-07-28")


def mcp_mode(client_index: int) -> str:
    return MODES[client_index % len(MODES)]


async def mcp_call(ctx: ClientContext) -> RequestSample:
    tool = ctx.rng.choice(sorted(TOOL_CALLS))

    async def attempt(started: float, limit: asyncio.Timeout) -> RequestSample:
        ctx.responses.clear()
        transport = streamable_http_client(f"{ctx.url}/mcp", http_client=ctx.http)
        try:
            async with Client(transport, mode=mcp_mode(ctx.index)) as client:
                result = await client.call_tool(tool, TOOL_CALLS[tool])
        except (TimeoutError, asyncio.CancelledError, httpx2.TimeoutException):
            raise
        except Exception as exc:  # the SDK raises many kinds, often inside an ExceptionGroup
            if limit.expired():  # our timeout, turned into another error inside the SDK
                raise TimeoutError from exc
            outcome, fields = _failed(ctx.responses, exc)
            return ctx.sample("mcp_call", started, outcome, **fields)
        outcome, fields = _failed(ctx.responses, None)
        if outcome != "ok":
            return ctx.sample("mcp_call", started, outcome, **fields)
        if result.is_error:
            text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
            return ctx.sample("mcp_call", started, "client_error", detail=f"{tool}: {text[:60]}")
        return ctx.sample("mcp_call", started, "ok", status=200, detail=tool)

    return await guarded(ctx, "mcp_call", attempt)


def _failed(
    responses: list[httpx2.Response], exc: BaseException | None
) -> tuple[Outcome, dict[str, object]]:
    """Classify an MCP call by the HTTP answers it got and the exception it raised, if any."""
    for response in responses:
        if response.status_code >= 500:
            retry_after = response.headers.get("retry-after")
            if response.status_code == 503 and retry_after:
                return "backpressure", {"status": 503, "retry_after": retry_after}
            return "server_error", {"status": response.status_code, "detail": "HTTP 5xx on /mcp"}
    if exc is None:
        return "ok", {}
    status = next((r.status_code for r in responses if r.status_code >= 400), None)
    detail = _innermost(exc)
    if status is not None:
        return "client_error", {"status": status, "detail": detail}
    return "transport_error", {"detail": detail}


def _innermost(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:80]
