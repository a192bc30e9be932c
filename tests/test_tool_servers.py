"""The same tools over real transports: the mcp SDK's client over Streamable HTTP (both protocol
eras) and over stdio (`python -m breakingwind mcp --stdio`), and REST through httpx."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from breakingwind.api.app import create_app
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.tools.sandbox import SANDBOX_RULES
from tests.conftest import LiveServer
from tests.fixture_project import SUITE_COUNTS, project_settings
from tests.sandbox_attacks import PATH_ARGUMENTS, attack_arguments, plant_attacks

TOOLS = {"read_file", "analyze_codebase", "search_docs", "find_references", "git_diff", "run_tests"}
CALLS: dict[str, dict[str, Any]] = {
    "read_file": {"path": "pkg/core.py", "start_line": 1, "end_line": 3},
    "analyze_codebase": {"max_modules": 5},
    "search_docs": {"query": "frobnication"},
    "find_references": {"symbol": "helper"},
    "git_diff": {"base": "v1", "target": "main"},
    "run_tests": {},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, list[str]]]:
    settings = project_settings(tmp_path_factory.mktemp("servers"))
    return settings, plant_attacks(settings.project.root)


@pytest.fixture(scope="module")
def server(project: tuple[Settings, dict[str, list[str]]], engine: Engine) -> Iterator[LiveServer]:
    with LiveServer(create_app(project[0], engine)) as live:
        yield live


def check_result(name: str, structured: dict[str, Any]) -> None:
    """What each tool must return on the fixture project, whatever the transport."""
    if name == "read_file":
        assert structured["content"].startswith('"""Core logic')
    elif name == "analyze_codebase":
        assert structured["modules_total"] > 5 and len(structured["modules"]) == 5
    elif name == "search_docs":
        assert structured["results"][0]["path"] == "pkg/core.py"
    elif name == "find_references":
        assert any(d["path"] == "pkg/core.py" for d in structured["definitions"])
    elif name == "git_diff":
        assert [f["path"] for f in structured["files"]] == ["pkg/core.py"]
    elif name == "run_tests":
        assert {k: structured[k] for k in SUITE_COUNTS} == SUITE_COUNTS


async def _mcp_session(target: Any, mode: str, attacks: dict[str, list[str]]) -> None:
    async with Client(target, mode=mode) as client:
        listed = await client.list_tools()
        by_name = {tool.name: tool for tool in listed.tools}
        assert set(by_name) == TOOLS
        assert by_name["read_file"].annotations.read_only_hint is True
        assert by_name["run_tests"].annotations.read_only_hint is False
        assert "content" in by_name["read_file"].output_schema["properties"]
        for name, arguments in CALLS.items():
            result = await client.call_tool(name, arguments)
            assert not result.is_error, result.content
            check_result(name, result.structured_content)
        for tool in PATH_ARGUMENTS:
            for rule in SANDBOX_RULES:
                result = await client.call_tool(tool, attack_arguments(tool, attacks[rule][0]))
                assert result.is_error
                assert f"SandboxViolation[{rule}]" in result.content[0].text
        unknown = await client.call_tool("read_file", {"path": "missing.py"})
        assert unknown.is_error and "ToolInputRejected" in unknown.content[0].text


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_mcp_over_http_serves_every_tool_and_refuses_every_attack(
    server: LiveServer, project: tuple[Settings, dict[str, list[str]]], mode: str
) -> None:
    asyncio.run(_mcp_session(f"{server.url}/mcp", mode, project[1]))


def test_mcp_over_stdio_serves_every_tool_and_refuses_every_attack(
    project: tuple[Settings, dict[str, list[str]]], clean_env: dict[str, str]
) -> None:
    settings = project[0]
    assert settings.config_file is not None
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "breakingwind", "--config", str(settings.config_file), "mcp", "--stdio"],
        env={
            **clean_env,
            "BREAKINGWIND_PROJECT_ROOT": str(settings.project.root),
            "BREAKINGWIND_HOME": str(settings.storage.data_dir),
        },
        cwd=os.getcwd(),
    )
    asyncio.run(_mcp_session(params, "legacy", project[1]))


def test_mcp_refuses_a_foreign_origin(server: LiveServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    foreign = httpx.post(
        f"{server.url}/mcp", json=body, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    rebound = httpx.post(
        f"{server.url}/mcp", json=body, headers={**MCP_HEADERS, "Host": "evil.example:8080"}
    )
    assert rebound.status_code == 421


def test_rest_lists_tools_with_schemas(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/api/mcp/tools")
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.json()["tools"]}
    assert set(tools) == TOOLS
    assert tools["git_diff"]["input_schema"]["properties"]["paths"]["type"] == "array"
    assert tools["run_tests"]["annotations"] == {
        "read_only": False, "destructive": False, "idempotent": False, "open_world": False
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(CALLS))
def test_rest_calls_each_tool(server: LiveServer, name: str) -> None:
    response = httpx.post(
        f"{server.url}/api/mcp/tool", json={"name": name, "arguments": CALLS[name]}, timeout=120
    )
    assert response.status_code == 200, response.text
    check_result(name, response.json()["result"])


def test_rest_refuses_every_attack_with_403(
    server: LiveServer, project: tuple[Settings, dict[str, list[str]]]
) -> None:
    with httpx.Client(base_url=server.url) as client:
        for tool in PATH_ARGUMENTS:
            for rule in SANDBOX_RULES:
                arguments = attack_arguments(tool, project[1][rule][0])
                response = client.post("/api/mcp/tool", json={"name": tool, "arguments": arguments})
                assert response.status_code == 403, (tool, rule, response.text)
                error = response.json()["error"]
                assert (error["code"], error["rule"]) == ("sandbox_violation", rule)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"name": "nope"}, 404, "unknown_tool"),
        ({"name": "read_file", "arguments": {"path": "README.md", "start_line": "x"}}, 422,
         "invalid_tool_arguments"),
        ({"name": "read_file", "arguments": {"path": "missing.md"}}, 422, "tool_input_rejected"),
        ({"arguments": {}}, 400, None),
    ],
)  # fmt: skip
def test_rest_errors_are_typed(
    server: LiveServer, body: dict[str, Any], status: int, kind: str
) -> None:
    response = httpx.post(f"{server.url}/api/mcp/tool", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == kind


def test_rest_refuses_a_foreign_origin(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/api/mcp/tool",
        json={"name": "read_file", "arguments": {"path": "README.md"}},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden_origin"
    local = httpx.get(f"{server.url}/api/mcp/tools", headers={"Origin": "http://localhost:3000"})
    assert local.status_code == 200


def test_api_key_guards_rest_and_mcp(tmp_path: Path, engine: Engine) -> None:
    settings = project_settings(tmp_path, '[server]\napi_key = "sesame"\n')
    with LiveServer(create_app(settings, engine)) as live:
        assert httpx.get(f"{live.url}/api/mcp/tools").status_code == 401
        good = {"Authorization": "Bearer sesame"}
        assert httpx.get(f"{live.url}/api/mcp/tools", headers=good).status_code == 200
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        assert httpx.post(f"{live.url}/mcp", json=body, headers=MCP_HEADERS).status_code == 401
