"""A small client for a running daemon: /health, /v1/models, a chat completion, MCP tools/list,
the task list and cancelling a task.

HTTP goes through httpx2 (already the daemon's dependency), MCP through the official `mcp` SDK
client over Streamable HTTP at /mcp. Every request carries the API key when one is given.
Nothing answering raises `DaemonUnreachable`; an error answer raises `DaemonError` with the
daemon's own message and the HTTP status.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2

from breakingwind.errors import DaemonError, DaemonUnreachable

HEALTH_STATUSES = frozenset({200, 503})  # 503: still loading, a normal answer of /health


class DaemonClient:
    """Synchronous calls to the daemon at `url` (e.g. http://127.0.0.1:8080)."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s

    def health(self) -> dict[str, Any]:
        """The /health document (also while models load); `DaemonError` if it is not ours."""
        response = self._request("GET", "/health", ok=HEALTH_STATUSES)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("agents"), dict):
            raise DaemonError(
                f"{self.url}/health answered HTTP {response.status_code} but not as a"
                " BreakingWind daemon",
                response.status_code,
            )
        return body

    def model_ids(self) -> list[str]:
        """The ids GET /v1/models lists."""
        body = self._request("GET", "/v1/models").json()
        return [card["id"] for card in body.get("data", [])]

    def chat(self, model: str, content: str, max_tokens: int, timeout_s: float) -> dict[str, Any]:
        """One non-streamed chat completion (the OpenAI response body)."""
        body = {
            "model": model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
        }
        return self._request("POST", "/v1/chat/completions", json=body, timeout=timeout_s).json()

    def tasks(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` tasks (GET /api/tasks summaries: task_id, stage, input, ...)."""
        body = self._request("GET", f"/api/tasks?limit={limit}").json()
        return list(body.get("tasks", []))

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancel a running task; returns its state (`DaemonError` 404/409: unknown or ended)."""
        return self._request("POST", f"/api/task/{task_id}/cancel", timeout=60).json()

    def mcp_tool_names(self) -> list[str]:
        """The tool names an MCP `tools/list` at /mcp returns."""
        refusals: list[httpx2.Response] = []  # the SDK's error does not say the HTTP status
        try:
            return asyncio.run(self._mcp_tool_names(refusals))
        except Exception as exc:  # the SDK raises several kinds, often inside an ExceptionGroup
            message = f"MCP tools/list at {self.url}/mcp: {_describe(exc)}"
            if not refusals:
                raise DaemonError(message) from None
            refused = refusals[-1]
            raise DaemonError(
                f"{message} (HTTP {refused.status_code}: {_error_message(refused)})",
                refused.status_code,
            ) from None

    async def _mcp_tool_names(self, refusals: list[httpx2.Response]) -> list[str]:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async def keep_refusals(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                await response.aread()
                refusals.append(response)

        hooks = {"response": [keep_refusals]}
        async with (
            httpx2.AsyncClient(
                headers=self.headers, timeout=self.timeout_s, event_hooks=hooks
            ) as http,
            Client(streamable_http_client(f"{self.url}/mcp", http_client=http)) as client,
        ):
            listed = await client.list_tools()
            return [tool.name for tool in listed.tools]

    def _request(
        self,
        method: str,
        path: str,
        ok: frozenset[int] = frozenset({200}),
        timeout: float | None = None,
        **kwargs: Any,
    ) -> httpx2.Response:
        try:
            response = httpx2.request(
                method,
                self.url + path,
                headers=self.headers,
                timeout=timeout or self.timeout_s,
                **kwargs,
            )
        except httpx2.ConnectError as exc:
            raise DaemonUnreachable(f"nothing answers at {self.url} ({exc})") from None
        except httpx2.TimeoutException:
            raise DaemonError(
                f"{method} {self.url}{path} timed out after {timeout or self.timeout_s:g} s"
            ) from None
        except httpx2.HTTPError as exc:
            raise DaemonError(f"{method} {self.url}{path} failed: {_describe(exc)}") from None
        if response.status_code not in ok:
            raise DaemonError(
                f"{method} {path} answered HTTP {response.status_code}: {_error_message(response)}",
                response.status_code,
            )
        return response


def _error_message(response: httpx2.Response) -> str:
    """The daemon's error message (OpenAI-shaped body), else the start of the body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return response.text.strip()[:200] or "(empty body)"


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
