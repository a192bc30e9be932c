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
from breakingwind.config import AGENT_NAMES
from breakingwind.engine import Engine
from breakingwind.engine.scripted import ScriptedModel
from tests.conftest import LiveServer, make_settings

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
    engine = Engine(settings)
    for agent in AGENT_NAMES:  # answers are never needed: no valid body reaches a model...
        model = ScriptedModel(agent)
        model.enqueue(*(["ok"] * 1000))  # ...and if one does, it gets an answer
        engine.replace_model(agent, model)
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
