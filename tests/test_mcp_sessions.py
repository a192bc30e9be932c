"""MCP sessions that clients never DELETE expire, and their number is capped.

A client that initializes in a loop without DELETE used to leave every session open for good
(1,800 initialize calls: +73 MB that stayed). Now a session idle for `server.mcp_session_idle_s`
is closed (its id answers 404) and at most `server.mcp_max_sessions` are open at once (503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client

from breakingwind.api.app import create_app
from breakingwind.engine import Engine
from tests.conftest import MCP_INITIALIZE, LiveServer, make_settings

IDLE_S = 1.0
MAX_SESSIONS = 5
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INITIALIZE = MCP_INITIALIZE
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    extra = f"[server]\nmcp_session_idle_s = {IDLE_S}\nmcp_max_sessions = {MAX_SESSIONS}\n"
    settings = make_settings(tmp_path, extra, {"BREAKINGWIND_PROJECT_ROOT": str(tmp_path)})
    engine = Engine(settings)  # never started: MCP tools need no model
    with LiveServer(create_app(settings, engine)) as live:
        yield live


def initialize(client: httpx.Client) -> httpx.Response:
    return client.post("/mcp", json=INITIALIZE, headers=HEADERS)


def ping(client: httpx.Client, session: str) -> httpx.Response:
    return client.post("/mcp", json=PING, headers={**HEADERS, "mcp-session-id": session})


def test_sessions_past_the_cap_get_503_until_idle_ones_expire(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        opened = [initialize(client) for _ in range(MAX_SESSIONS)]
        assert [r.status_code for r in opened] == [200] * MAX_SESSIONS
        sessions = [r.headers["mcp-session-id"] for r in opened]
        assert ping(client, sessions[0]).status_code == 200  # alive while in use

        assert initialize(client).status_code == 503  # the cap holds

        deadline = time.monotonic() + IDLE_S + 15
        while (fresh := initialize(client)).status_code == 503:
            assert time.monotonic() < deadline, "idle sessions never expired"
            time.sleep(0.2)
        assert fresh.status_code == 200
        time.sleep(IDLE_S + 1)  # every leaked session has now been idle past the timeout
        assert [ping(client, s).status_code for s in sessions] == [404] * MAX_SESSIONS


def test_an_initialize_loop_never_holds_more_than_the_cap(server: LiveServer) -> None:
    """The probe's leak pattern (initialize, never DELETE) over several idle periods."""
    statuses: list[int] = []
    live: list[tuple[float, str]] = []  # (opened at, id) of sessions the server accepted
    with httpx.Client(base_url=server.url, timeout=30) as client:
        end = time.monotonic() + 3 * IDLE_S
        while time.monotonic() < end:
            response = initialize(client)
            statuses.append(response.status_code)
            if response.status_code == 200:
                live.append((time.monotonic(), response.headers["mcp-session-id"]))
            time.sleep(0.02)
        assert set(statuses) <= {200, 503}
        accepted = len(live)
        assert accepted > MAX_SESSIONS  # expiry made room again and again...
        time.sleep(IDLE_S + 1)
        # ...and none of them outlives its idle timeout
        assert all(ping(client, session).status_code == 404 for _, session in live)
    for opened, _ in live:  # never more than the cap open at one moment
        overlapping = [t for t, _ in live if opened <= t < opened + IDLE_S * 0.5]
        assert len(overlapping) <= MAX_SESSIONS


def test_an_sdk_client_in_use_is_not_expired(server: LiveServer) -> None:
    """A session with requests every so often (under the idle time) stays open."""

    async def session() -> int:
        async with Client(f"{server.url}/mcp") as client:
            for _ in range(4):
                await client.list_tools()
                await asyncio.sleep(IDLE_S * 0.5)
            return len((await client.list_tools()).tools)

    assert asyncio.run(session()) > 0
