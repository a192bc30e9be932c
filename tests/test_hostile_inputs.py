"""Valid-looking input that used to be a 500: each is now a 4xx in the protocol's error shape.

Lone surrogate escapes ("\\ud800" is valid JSON but no character), non-ASCII digits in query
numbers (`str.isdigit()` accepts '²'), a Last-Event-ID past SQLite's integers, an empty
completions prompt, and concurrent applies of one task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from breakingwind.api.app import create_app
from breakingwind.config import AGENT_NAMES, ToolsSettings
from breakingwind.engine import Engine
from breakingwind.engine.scripted import ScriptedModel
from breakingwind.errors import ToolInputRejected
from breakingwind.tools.sandbox import Sandbox
from tests.conftest import MCP_INITIALIZE, LiveServer, make_settings
from tests.pipeline_fixtures import FIX_DIFF, NO_TOOLS, TASK, code, make_project, plan, review

SURROGATE = "\\ud800"  # the JSON escape, as a hostile client sends it
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def real(engine: Engine) -> Iterator[LiveServer]:
    """The real embedded model behind the API."""
    with LiveServer(create_app(engine.settings, engine)) as live:
        yield live


@pytest.fixture(scope="module")
def scripted(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, dict[str, ScriptedModel], Path]]:
    tmp = tmp_path_factory.mktemp("hostile")
    project = make_project(tmp / "project")
    settings = make_settings(tmp, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    engine = Engine(settings)
    models = {agent: ScriptedModel(agent) for agent in AGENT_NAMES}
    for agent, model in models.items():
        engine.replace_model(agent, model)
    with LiveServer(create_app(settings, engine)) as live:
        yield live, models, project
    engine.close()


@pytest.fixture(scope="module")
def finished(scripted: tuple) -> str:
    """A completed task (not applied)."""
    live, models, _ = scripted
    return _finished_task(live, models)


def post_raw(url: str, raw: str) -> httpx.Response:
    """POST `raw` JSON text as it is (json= would refuse to encode a lone surrogate)."""
    headers = {"content-type": "application/json"}
    return httpx.post(url, content=raw.encode(), headers=headers, timeout=60)


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["param"] == param
    return error


# --- lone surrogates -------------------------------------------------------------------------

SURROGATE_BODIES = {
    "chat_content": (
        "/v1/chat/completions",
        '{"model": "breakingwind-coder", "messages": [{"role": "user", "content": "a%sb"}]}',
        "messages[0].content",
    ),
    "chat_text_part": (
        "/v1/chat/completions",
        '{"model": "breakingwind-coder", "messages": [{"role": "user", "content":'
        ' [{"type": "text", "text": "%s"}]}]}',
        "messages[0].content[0].text",
    ),
    "completions_prompt": (
        "/v1/completions",
        '{"model": "breakingwind-coder", "prompt": "def f%s():"}',
        "prompt",
    ),
    "workflow_input": ("/api/workflow", '{"input": "fix %s"}', "input"),
    "workflow_project": ("/api/workflow", '{"input": "fix it", "project": "/tmp/%s"}', "project"),
    "rest_tool_path": ("/api/mcp/tool", '{"name": "read_file", "arguments": {"path": "%s"}}', None),
    "key": ("/api/workflow", '{"input": "x", "options": {"%s": 1}}', "options"),
}


@pytest.mark.parametrize("case", sorted(SURROGATE_BODIES))
def test_lone_surrogate_is_a_400_naming_the_field(real: LiveServer, case: str) -> None:
    path, template, param = SURROGATE_BODIES[case]
    response = post_raw(f"{real.url}{path}", template % SURROGATE)
    error = assert_openai_error(response, 400, param or "arguments.path")
    assert "surrogate" in error["message"]


def test_paired_surrogates_are_an_ordinary_character(real: LiveServer) -> None:
    body = '{"model": "breakingwind-coder", "prompt": "\\ud83d\\ude00", "max_tokens": 2}'
    assert post_raw(f"{real.url}/v1/completions", body).status_code == 200


def test_lone_surrogate_in_an_mcp_call_is_a_json_rpc_error(real: LiveServer) -> None:
    init = MCP_INITIALIZE
    call = {"name": "read_file", "arguments": {"path": "@"}}
    raw = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
    with httpx.Client(base_url=real.url, timeout=60) as client:
        response = client.post("/mcp", json=init, headers=MCP_HEADERS)
        headers = {**MCP_HEADERS, "mcp-session-id": response.headers["mcp-session-id"]}
        response = client.post("/mcp", content=raw.replace("@", SURROGATE), headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == -32700  # JSON-RPC's parse error
        client.delete("/mcp", headers=headers)


def test_sandbox_refuses_a_lone_surrogate_path(tmp_path: Path) -> None:
    """The same rule for agents' tool calls, which never pass through a JSON parser."""
    sandbox = Sandbox.create(tmp_path, ToolsSettings())
    with pytest.raises(ToolInputRejected, match="surrogate"):
        sandbox.resolve_inside_project("a\ud800b")


# --- numbers in the query and headers ---------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "٣", "1²", "", "-1", "99999999999999999999"])
@pytest.mark.parametrize("name", ["limit", "offset"])
def test_list_paging_refuses_non_ascii_and_huge_numbers(
    scripted: tuple, name: str, value: str
) -> None:
    live, _, _ = scripted
    response = httpx.get(f"{live.url}/api/tasks", params={name: value})
    assert_openai_error(response, 400, name)


def _finished_task(live: LiveServer, models: dict[str, ScriptedModel]) -> str:
    models["preprocessor"].enqueue("Fix add() in calc.py.")
    models["planner"].enqueue(NO_TOOLS, plan())
    models["coder"].enqueue(NO_TOOLS, code(FIX_DIFF))
    models["reviewer"].enqueue(review("approved"))
    response = httpx.post(f"{live.url}/api/workflow", json={"input": TASK}, timeout=120)
    assert "event: completed" in response.text, response.text
    return response.headers["x-task-id"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("header", "²"),
        ("header", "9223372036854775808"),  # 2**63: one past SQLite's largest integer
        ("header", "9" * 40),
        ("query", "٣"),
        ("query", "18446744073709551616"),
    ],
)
def test_event_resume_point_must_be_a_storable_number(
    scripted: tuple, finished: str, where: str, value: str
) -> None:
    live, _, _ = scripted
    url = f"{live.url}/api/task/{finished}/events"
    if where == "header":
        response = httpx.get(url, headers={"Last-Event-ID": value.encode("latin-1")})
    else:
        response = httpx.get(url, params={"after": value})
    assert_openai_error(response, 400, "Last-Event-ID")


def test_largest_event_id_resumes_with_nothing_left(scripted: tuple, finished: str) -> None:
    live, _, _ = scripted
    url = f"{live.url}/api/task/{finished}/events"
    response = httpx.get(url, headers={"Last-Event-ID": str(2**63 - 1)}, timeout=30)
    assert response.status_code == 200
    assert "event: completed" not in response.text  # everything up to that id was seen


# --- empty prompt, concurrent apply ------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", [""]])
def test_empty_completions_prompt_is_a_400(real: LiveServer, prompt: object) -> None:
    body = {"model": "breakingwind-coder", "prompt": prompt, "max_tokens": 4}
    response = httpx.post(f"{real.url}/v1/completions", json=body, timeout=60)
    error = assert_openai_error(response, 400, None)
    assert error["code"] == "empty_prompt"


def test_concurrent_applies_are_one_200_and_409s(scripted: tuple) -> None:
    live, models, project = scripted
    task_id = _finished_task(live, models)
    url = f"{live.url}/api/task/{task_id}/apply"
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: httpx.post(url, timeout=60), range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 7, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "task_conflict"
    assert "return a + b" in (project / "calc.py").read_text()
