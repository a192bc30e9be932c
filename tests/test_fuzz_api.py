"""Property-based fuzzing of every JSON body: never a 500, never a traceback, always a typed
OpenAI-shaped error (or a success)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakingwind.api.app import create_app
from tests.conftest import MCP_INITIALIZE, LiveServer, make_settings, scripted_engine

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = {
    "/v1/chat/completions": [
        "model",
        "messages",
        "stream",
        "max_tokens",
        "temperature",
        "tools",
        "tool_choice",
        "response_format",
        "stop",
        "n",
        "stream_options",
    ],
    "/v1/completions": ["model", "prompt", "max_tokens", "suffix", "echo", "stream"],
    "/api/workflow": ["input", "project", "options"],
    "/api/mcp/tool": ["name", "arguments"],
}
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "tool", "x"]), "content": JSON}
)


def bodies(path: str) -> st.SearchStrategy[object]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            name: (st.lists(MESSAGE, max_size=3) | JSON)
            if name == "messages"
            else (st.sampled_from(["breakingwind-coder", "nope", ""]) | JSON)
            if name == "model"
            else JSON
            for name in FIELDS[path]
        },
    )
    return fields | JSON


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    settings = make_settings(tmp, environ={"BREAKINGWIND_PROJECT_ROOT": str(tmp)})
    engine, models = scripted_engine(settings)
    for model in models.values():  # answers are never needed: no valid body reaches a model...
        model.enqueue(*(["ok"] * 1000))  # ...and if one does, it gets an answer
    with LiveServer(create_app(settings, engine)) as live:
        yield live
    engine.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"}


@pytest.mark.parametrize("path", sorted(FIELDS))
def test_random_json_bodies_get_typed_errors(server: LiveServer, path: str) -> None:
    client = httpx.Client(base_url=server.url, timeout=30)

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(body=bodies(path))
    def run(body: object) -> None:
        if isinstance(body, dict) and body.get("stream") is True:
            body["stream"] = False  # a streamed success would only end when its task ends
        check(
            client.post(
                path, content=json.dumps(body), headers={"content-type": "application/json"}
            )
        )

    run()
    client.close()


@pytest.mark.parametrize("path", sorted(FIELDS))
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b"\xff\xfe",
        b'{"model": "\\ud800"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_bodies_are_400s(server: LiveServer, path: str, raw: bytes) -> None:
    response = httpx.post(
        f"{server.url}{path}", content=raw, headers={"content-type": "application/json"}, timeout=30
    )
    check(response)
    assert response.status_code in (400, 404, 422)


@pytest.mark.parametrize("path", sorted(FIELDS))
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_cross_site_simple_requests_are_refused(
    server: LiveServer, path: str, content_type: str
) -> None:
    response = httpx.post(
        f"{server.url}{path}",
        content=b'{"model": "breakingwind-coder"}',
        headers={"content-type": content_type},
    )
    assert response.status_code == 415


MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
JSONRPC = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0"]) | JSON},
    optional={
        "id": st.integers(-5, 10**6) | st.text(max_size=8) | JSON,
        "method": st.sampled_from(
            ["tools/call", "tools/list", "initialize", "ping", "resources/list", "x/y"]
        )
        | JSON,
        "params": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["read_file", "run_tests", "git_diff", "nope"]) | JSON,
                "arguments": st.dictionaries(
                    st.sampled_from(["path", "start_line", "ref", "workspace", "query"]), JSON
                )
                | JSON,
            },
        )
        | JSON,
    },
)

# well-formed tool calls with hostile arguments: these reach the tools and the path sandbox
TOOL_CALL = st.builds(
    lambda id_, name, arguments: {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    },
    st.integers(1, 10**6),
    st.sampled_from(
        ["read_file", "analyze_codebase", "search_docs", "find_references", "git_diff", "nope"]
    ),
    st.dictionaries(
        st.sampled_from(["path", "start_line", "end_line", "ref", "query", "symbol", "paths"]),
        st.sampled_from(["../../etc/passwd", "/etc/passwd", "%2e%2e/x", "a\x00b", "."]) | JSON,
        max_size=3,
    ),
)


def _mcp_session(client: httpx.Client) -> str:
    response = client.post(
        "/mcp",
        headers=MCP_HEADERS,
        json=MCP_INITIALIZE,
    )
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    client.post(
        "/mcp",
        headers={**MCP_HEADERS, "mcp-session-id": session},
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
    )
    return session


def test_random_mcp_messages_get_json_rpc_errors(server: LiveServer) -> None:
    """The MCP route, inside an initialised session and outside one: never a 500 or a traceback;
    a JSON answer that is an error is a JSON-RPC error object."""
    client = httpx.Client(base_url=server.url, timeout=30)
    session = _mcp_session(client)

    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(message=st.one_of(TOOL_CALL, TOOL_CALL, JSONRPC, JSON), in_session=st.booleans())
    def run(message: object, in_session: bool) -> None:
        headers = {**MCP_HEADERS, **({"mcp-session-id": session} if in_session else {})}
        response = client.post("/mcp", content=json.dumps(message), headers=headers)
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
        text = response.text.strip()
        if text.startswith("event:") or text.startswith("data:"):  # an SSE answer
            text = next(line[5:].strip() for line in text.splitlines() if line.startswith("data:"))
        if text.startswith("{"):
            answer = json.loads(text)
            if "error" in answer:
                assert isinstance(answer["error"].get("code"), int), answer
                assert isinstance(answer["error"].get("message"), str), answer

    run()
    client.close()
