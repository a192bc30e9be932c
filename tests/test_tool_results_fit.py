"""Large tool results fit every door: the official `mcp` client over Streamable HTTP (whose SSE
reader refuses an event over 1 MiB), REST, and the agents' tool loop, on >= 2,000 files. A result
that would not fit is paged (`modules_offset` / `next_modules_offset`); an agent, whose context
holds far less, gets the head of it and how to ask for the rest.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client

from breakingwind.agents.tool_loop import RESULT_CHARS
from breakingwind.api.app import create_app
from breakingwind.config import Settings
from breakingwind.engine import Engine
from tests.conftest import LiveServer, make_settings
from tests.pipeline_fixtures import gather_one_call, tool_call
from tests.test_analyze_large import generate

FILES = 2500
SSE_EVENT_LIMIT = 1_048_576  # the mcp client's limit on one server-sent event


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("large")
    generate(root / "project", FILES)
    return make_settings(root, environ={"BREAKINGWIND_PROJECT_ROOT": str(root / "project")})


@pytest.fixture(scope="module")
def server(large: Settings, engine: Engine) -> Iterator[LiveServer]:
    with LiveServer(create_app(large, engine)) as live:
        yield live


async def _page_through(url: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    pages = []
    async with Client(f"{url}/mcp") as client:
        offset: int | None = 0
        while offset is not None:
            result = await client.call_tool(
                "analyze_codebase", {**arguments, "modules_offset": offset}
            )
            assert not result.is_error, result.content
            pages.append(result.structured_content)
            offset = result.structured_content["next_modules_offset"]
    return pages


def test_mcp_client_pages_through_analyze_codebase_of_2500_files(server: LiveServer) -> None:
    pages = asyncio.run(_page_through(server.url, {"max_modules": 5000}))
    modules = [m["path"] for page in pages for m in page["modules"]]
    assert len(pages) > 1  # the whole map does not fit one result
    assert len(modules) == len(set(modules)) == pages[0]["modules_total"] == FILES + 1
    for page in pages:
        assert len(json.dumps(page)) * 2 < SSE_EVENT_LIMIT  # sent as text and as structure


def test_rest_returns_the_same_first_page(server: LiveServer) -> None:
    answer = httpx.post(
        f"{server.url}/api/mcp/tool",
        json={"name": "analyze_codebase", "arguments": {"max_modules": 5000}},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.content) < SSE_EVENT_LIMIT // 2
    body = answer.json()
    result = body.get("result", body)
    assert result["modules_truncated"] and result["next_modules_offset"] == len(result["modules"])


def test_an_agent_gets_a_cut_result_with_how_to_ask_for_the_rest(large: Settings) -> None:
    answer = tool_call("analyze_codebase", max_modules=5000)
    conversation, calls, _ = gather_one_call(
        large, "analyze_codebase", "map the project", answer, "done"
    )
    result = conversation[-1]
    assert calls == [("analyze_codebase", True)] and result["role"] == "tool"
    assert len(result["content"]) < RESULT_CHARS + 300
    assert re.search(
        rf"…\(cut at {RESULT_CHARS} of \d+ characters: ask for less .* modules_offset\)$",
        result["content"],
    )
