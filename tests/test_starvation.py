"""One client cannot hold a model: max_tokens is capped, a request that finds no room within
`engine.queue_wait_s` gets 503 + Retry-After, and a `breakingwind` chat whose client hangs up
cancels its task (unless `pipeline.cancel_chat_on_disconnect` is off)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from breakingwind.api.app import create_app
from breakingwind.config import AGENT_NAMES
from breakingwind.engine import Engine
from breakingwind.engine.scripted import Hang, ScriptedModel
from tests.conftest import LiveServer, make_settings
from tests.pipeline_fixtures import NO_TOOLS, TASK, make_project

LIMIT = 300
HELLO = [{"role": "user", "content": "Count to a thousand."}]


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real embedded model with one slot, a token cap and a short queue wait."""
    extra = f"parallel = 1\nmax_tokens_limit = {LIMIT}\nqueue_wait_s = 0.5\n"
    settings = make_settings(tmp_path_factory.mktemp("one-slot"), extra)
    engine = Engine(settings)
    engine.start()
    asyncio.run(engine.wait_ready())
    with LiveServer(create_app(settings, engine)) as live:
        yield live
    engine.close()


def chat(url: str, **body: object) -> httpx.Response:
    payload = {"model": "breakingwind-coder", "messages": HELLO, **body}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, timeout=300)


def test_max_tokens_is_cut_to_the_configured_limit(one_slot: LiveServer) -> None:
    response = chat(one_slot.url, max_tokens=1_000_000, ignore_eos=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["completion_tokens"] == LIMIT
    assert body["choices"][0]["finish_reason"] == "length"


def test_a_request_finding_no_room_gets_503_with_retry_after(one_slot: LiveServer) -> None:
    started = threading.Event()
    holder: list[httpx.Response] = []

    def hold_the_slot() -> None:
        payload = {"model": "breakingwind-coder", "messages": HELLO, "stream": True}
        body = {**payload, "max_tokens": LIMIT, "ignore_eos": True}
        with httpx.stream(
            "POST", f"{one_slot.url}/v1/chat/completions", json=body, timeout=300
        ) as r:
            for line in r.iter_lines():
                if '"content"' in line and '"content": ""' not in line:
                    started.set()  # generating: the only slot is taken
            holder.append(r)

    thread = threading.Thread(target=hold_the_slot)
    thread.start()
    assert started.wait(120), "the first request never started generating"
    began = time.monotonic()
    refused = chat(one_slot.url, max_tokens=4)
    waited = time.monotonic() - began
    thread.join(300)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["retry-after"]) >= 1
    assert waited < 30, f"refused only after {waited:.1f}s"
    assert holder and holder[0].status_code == 200  # the holder was not disturbed
    assert chat(one_slot.url, max_tokens=4).status_code == 200  # and the slot is free again


# --- the pipeline behind a chat ---------------------------------------------------------------


def _scripted_server(tmp: Path, extra: str = "") -> tuple[LiveServer, dict[str, ScriptedModel]]:
    project = make_project(tmp / "project")
    settings = make_settings(tmp, extra, {"BREAKINGWIND_PROJECT_ROOT": str(project)})
    engine = Engine(settings)
    models = {agent: ScriptedModel(agent) for agent in AGENT_NAMES}
    for agent, model in models.items():
        engine.replace_model(agent, model)
    models["preprocessor"].enqueue("Fix add().")
    models["planner"].enqueue(NO_TOOLS, Hang())  # the task stays in the planner until cancelled
    return LiveServer(create_app(settings, engine)), models


def _wait_for_planner(models: dict[str, ScriptedModel]) -> None:
    deadline = time.monotonic() + 60
    while len(models["planner"].requests) < 2:
        assert time.monotonic() < deadline, (
            "the task never reached the planner",
            {a: len(m.requests) for a, m in models.items()},
        )
        time.sleep(0.05)


def _stage_after(url: str, task_id: str, seconds: float) -> str:
    """The task's stage once it is cancelled, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        stage = httpx.get(f"{url}/api/task/{task_id}").json()["current_stage"]
        if stage == "cancelled" or time.monotonic() > deadline:
            return stage
        time.sleep(0.1)


def _latest_task(url: str) -> str:
    return httpx.get(f"{url}/api/tasks").json()["tasks"][0]["task_id"]


PIPELINE_CHAT = {"model": "breakingwind", "messages": [{"role": "user", "content": TASK}]}


def test_streamed_pipeline_chat_cancels_its_task_when_the_client_hangs_up(tmp_path: Path) -> None:
    server, models = _scripted_server(tmp_path)
    with server:
        body = {**PIPELINE_CHAT, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
            task_id = response.headers["x-task-id"]
            lines = response.iter_lines()  # held: dropping the iterator closes the connection
            next(lines)
            _wait_for_planner(models)
        assert _stage_after(server.url, task_id, 20) == "cancelled"


def test_pipeline_chat_cancels_its_task_when_a_waiting_client_hangs_up(tmp_path: Path) -> None:
    server, models = _scripted_server(tmp_path)
    with server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/chat/completions", json=PIPELINE_CHAT, timeout=3)
        assert len(models["planner"].requests) >= 1
        assert _stage_after(server.url, _latest_task(server.url), 20) == "cancelled"


def test_pipeline_chat_runs_on_after_a_hang_up_when_configured(tmp_path: Path) -> None:
    server, models = _scripted_server(tmp_path, "[pipeline]\ncancel_chat_on_disconnect = false\n")
    with server:
        body = {**PIPELINE_CHAT, "stream": True}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
            task_id = response.headers["x-task-id"]
            lines = response.iter_lines()  # held: dropping the iterator closes the connection
            next(lines)
            _wait_for_planner(models)
        assert _stage_after(server.url, task_id, 3) == "plan"  # still running
        httpx.post(f"{server.url}/api/task/{task_id}/cancel", timeout=30)
