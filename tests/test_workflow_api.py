"""The workflow API and the `breakingwind` chat model over real HTTP (scripted agents)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from breakingwind.api.app import create_app
from breakingwind.engine import Engine
from breakingwind.engine.scripted import Hang
from tests.conftest import LiveServer, make_settings, parse_sse, script_agents
from tests.media_files import png_bytes, screenshot
from tests.pipeline_fixtures import (
    CALC,
    FIX_DIFF,
    NO_TOOLS,
    TASK,
    code,
    make_project,
    plan,
    review,
    script_approved_fix,
)


class Scripted:
    def __init__(self, engine: Engine) -> None:
        self.models = script_agents(engine)

    def approve_first_time(self) -> None:
        script_approved_fix(self.models)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[LiveServer, Scripted, Path]]:
    project = make_project(tmp_path / "project")
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    engine = Engine(settings)
    scripted = Scripted(engine)
    with LiveServer(create_app(settings, engine)) as server:
        yield server, scripted, project
    engine.close()


def test_workflow_streams_numbered_events_to_completion(live: tuple) -> None:
    server, scripted, project = live
    scripted.approve_first_time()
    response = httpx.post(f"{server.url}/api/workflow", json={"input": TASK}, timeout=120)
    assert response.status_code == 200
    events = parse_sse(response.text)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"] == "task_created" and events[-1]["event"] == "completed"
    assert "+    return a + b" in events[-1]["data"]["report"]["diff"]
    task_id = response.headers["x-task-id"]
    state = httpx.get(f"{server.url}/api/task/{task_id}").json()
    assert state["current_stage"] == "complete" and state["test_results"][-1]["passed"] == 2
    listing = httpx.get(f"{server.url}/api/tasks").json()
    assert listing["total"] == 1 and listing["tasks"][0]["stage"] == "complete"
    assert (project / "calc.py").read_text() == CALC


def test_last_event_id_resumes_without_gaps_or_duplicates(live: tuple) -> None:
    server, scripted, _ = live
    scripted.approve_first_time()
    everything = parse_sse(
        httpx.post(f"{server.url}/api/workflow", json={"input": TASK}, timeout=120).text
    )
    task_id = everything[0]["data"]["task_id"]
    resumed = parse_sse(
        httpx.get(
            f"{server.url}/api/task/{task_id}/events", headers={"Last-Event-ID": "4"}, timeout=60
        ).text
    )
    assert [e["id"] for e in resumed] == [e["id"] for e in everything[4:]]
    assert resumed == everything[4:]


def test_disconnecting_does_not_cancel_the_workflow(live: tuple) -> None:
    server, scripted, _ = live
    scripted.approve_first_time()
    with httpx.stream(
        "POST", f"{server.url}/api/workflow", json={"input": TASK}, timeout=60
    ) as response:
        task_id = response.headers["x-task-id"]
        next(response.iter_lines())  # read a little, then hang up
    events = parse_sse(httpx.get(f"{server.url}/api/task/{task_id}/events", timeout=120).text)
    assert events[-1]["event"] == "completed"


def test_cancel_and_apply_over_http(live: tuple) -> None:
    server, scripted, project = live
    scripted.models["preprocessor"].enqueue("Fix add().", "Fix add().")
    scripted.models["planner"].enqueue(NO_TOOLS, Hang())
    with httpx.stream(
        "POST", f"{server.url}/api/workflow", json={"input": TASK}, timeout=60
    ) as response:
        task_id = response.headers["x-task-id"]
        deadline = time.monotonic() + 30
        while len(scripted.models["planner"].requests) < 2:  # hanging in the planner
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancelled = httpx.post(f"{server.url}/api/task/{task_id}/cancel", timeout=30)
        events = parse_sse(response.read().decode())
    assert cancelled.json()["current_stage"] == "cancelled"
    assert events[-1]["event"] == "cancelled"
    again = httpx.post(f"{server.url}/api/task/{task_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_conflict"
    refused = httpx.post(f"{server.url}/api/task/{task_id}/apply")
    assert refused.status_code == 409

    scripted.models["planner"].enqueue(NO_TOOLS, plan())
    scripted.models["coder"].enqueue(NO_TOOLS, code(FIX_DIFF))
    scripted.models["reviewer"].enqueue(review("approved"))
    done = parse_sse(
        httpx.post(f"{server.url}/api/workflow", json={"input": TASK}, timeout=120).text
    )
    applied = httpx.post(f"{server.url}/api/task/{done[0]['data']['task_id']}/apply")
    assert applied.status_code == 200
    assert applied.json()["final_output"]["applied_to_project"] is True
    assert "return a + b" in (project / "calc.py").read_text()


def test_apply_onto_a_changed_project_ends_the_stream_failed(live: tuple) -> None:
    """The terminal event a client sees is the task's stored terminal state."""
    server, scripted, project = live

    def approve_after_a_local_edit(request: object) -> str:
        (project / "calc.py").write_text(CALC + "\n# edited while the task ran\n")
        return review("approved")

    scripted.models["preprocessor"].enqueue("Fix add() in calc.py.")
    scripted.models["planner"].enqueue(NO_TOOLS, plan())
    scripted.models["coder"].enqueue(NO_TOOLS, code(FIX_DIFF))
    scripted.models["reviewer"].enqueue(approve_after_a_local_edit)
    body = {"input": TASK, "options": {"apply": True}}
    response = httpx.post(f"{server.url}/api/workflow", json=body, timeout=120)
    events = parse_sse(response.text)
    stored = httpx.get(f"{server.url}/api/task/{response.headers['x-task-id']}").json()
    assert stored["current_stage"] == "failed"
    assert events[-1]["event"] == "failed"
    assert "completed" not in [e["event"] for e in events]
    assert "changed since the task started" in events[-1]["data"]["error"]
    assert "+    return a + b" in events[-1]["data"]["report"]["diff"]  # to apply by hand
    assert "edited while the task ran" in (project / "calc.py").read_text()
    assert "return a - b" in (project / "calc.py").read_text()


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": "x", "project": "/definitely/not/here"}, 403, "project"),  # outside
        ({"input": "x", "project": "not/here"}, 400, "project"),  # inside the root, missing
        ({"input": "x", "options": {"max_review_cycles": 0}}, 400, "options.max_review_cycles"),
        ({"task": "x"}, 400, "input"),
    ],
)
def test_bad_workflow_requests_are_named(live: tuple, body: dict, status: int, param: str) -> None:
    server, _, _ = live
    response = httpx.post(f"{server.url}/api/workflow", json=body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param


def test_unknown_task_is_a_404(live: tuple) -> None:
    server, _, _ = live
    for path in ("/api/task/nope", "/api/task/nope/events"):
        response = httpx.get(f"{server.url}{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "task_not_found"


def test_pipeline_model_streams_progress_as_reasoning_and_the_diff_as_content(
    live: tuple,
) -> None:
    server, scripted, _ = live
    scripted.approve_first_time()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="breakingwind",
            stream=True,
            messages=[{"role": "user", "content": TASK}],
        )
    )
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "▶ plan" in reasoning and "Review: approved" in reasoning
    assert "```diff" in content and "+    return a + b" in content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_pipeline_model_over_the_messages_api_thinks_then_answers(live: tuple) -> None:
    server, scripted, _ = live
    scripted.approve_first_time()
    client = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
    with client.messages.stream(
        model="breakingwind", max_tokens=1024, messages=[{"role": "user", "content": TASK}]
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text"]
    assert "▶ plan" in final.content[0].thinking
    assert "Review: approved" in final.content[0].thinking
    assert "```diff" in final.content[1].text and "+    return a + b" in final.content[1].text


def test_pipeline_model_over_the_responses_api_reasons_then_answers(live: tuple) -> None:
    server, scripted, _ = live
    scripted.approve_first_time()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with client.responses.stream(model="breakingwind", input=TASK) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in kinds
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert "Review: approved" in final.output[0].content[0].text
    assert "+    return a + b" in final.output_text


def test_screenshot_sent_to_the_pipeline_model_reaches_the_task(
    live: tuple[LiveServer, Scripted, Path],
) -> None:
    server, scripted, _ = live
    scripted.models["preprocessor"].enqueue(Hang())  # the task's text is what is checked
    image = "data:image/png;base64," + base64.b64encode(png_bytes(screenshot())).decode()
    content = [
        {"type": "text", "text": "Fix this crash."},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    body = {
        "model": "breakingwind",
        "stream": True,
        "messages": [{"role": "user", "content": content}],
    }
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, timeout=120
    ) as response:
        assert response.status_code == 200
        task_id = response.headers["x-task-id"]
    task = httpx.get(f"{server.url}/api/task/{task_id}", timeout=10).json()
    assert "Fix this crash." in task["user_input"]
    assert "TypeError" in task["user_input"]  # read from the screenshot
    assert "reverse_words" in task["user_input"]
    deadline = time.monotonic() + 30  # hanging up cancels the task (cancel_chat_on_disconnect)
    while httpx.get(f"{server.url}/api/task/{task_id}").json()["current_stage"] != "cancelled":
        assert time.monotonic() < deadline, "the hang-up did not cancel the task"
        time.sleep(0.1)
