"""The whole pipeline on the real embedded model: mechanics, not quality.

A 135M model cannot fix code; these tests check that a real workflow runs every stage it reaches
in order, ends in a terminal state within its limits, keeps the developer's tree untouched, writes
everything to SQLite, and survives the daemon being killed mid-task.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from tests.conftest import Daemon, daemon_config, parse_sse, started, watch_until
from tests.pipeline_fixtures import CALC, TASK, make_project


def test_real_workflow_runs_to_a_terminal_state(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    daemon = Daemon(daemon_config(tmp_path, project, free_port), free_port, clean_env)
    try:
        response = httpx.post(f"{daemon.url}/api/workflow", json={"input": TASK}, timeout=600)
    finally:
        daemon.stop()
    events = parse_sse(response.text)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "task_created" and kinds[-1] in ("completed", "failed")
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    stages = [e["data"]["stage"] for e in events if e["event"] == "stage_started"]
    assert stages[:2] == ["preprocess", "plan"], events[-1]  # in order, from the start
    assert "token" in kinds  # the agents' text streamed
    # Typed text passes the preprocessor without a model call, and its stage says so.
    [preprocess] = [
        e["data"]
        for e in events
        if e["event"] == "stage_finished" and e["data"]["stage"] == "preprocess"
    ]
    assert preprocess["passthrough"].startswith("typed text only")
    # Each model call announces the prompt it reads, and its text streams as it is generated,
    # in several events rather than one at the end of its stage.
    prefills = [e["data"] for e in events if e["event"] == "prefill"]
    assert "planner" in {p["agent"] for p in prefills}
    assert all(p["prompt_tokens"] > 0 for p in prefills)
    planner = [
        e["data"] for e in events if e["event"] == "token" and e["data"]["agent"] == "planner"
    ]
    assert len(planner) >= 2 and all(t["tokens"] >= 1 for t in planner)
    for event in events:
        if event["event"] == "test_results":  # counts come from the real run of 2 tests
            assert event["data"]["runner"] == "pytest" and event["data"]["total"] >= 2
    assert (project / "calc.py").read_text() == CALC  # never touched without apply
    db = sqlite3.connect(tmp_path / "data" / "breakingwind.sqlite3")
    (stage,) = db.execute("SELECT stage FROM tasks").fetchone()
    stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert stage in ("complete", "failed") and stored == len(events)


def test_killed_daemon_resumes_the_task_with_its_history_intact(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    config = daemon_config(tmp_path, project, free_port)
    daemon = Daemon(config, free_port, clean_env)
    try:
        task_id, seen = watch_until(daemon, started("plan"), timeout=600)  # killed mid-task
    finally:
        daemon.stop()
    database = tmp_path / "data" / "breakingwind.sqlite3"
    assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone() == ("ok",)

    restarted = Daemon(config, free_port, clean_env)
    try:
        history = parse_sse(
            httpx.get(f"{restarted.url}/api/task/{task_id}/events", timeout=600).text
        )
        state = httpx.get(f"{restarted.url}/api/task/{task_id}").json()
    finally:
        restarted.stop()
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert history[: len(seen)] == seen  # everything a client saw is still there, unchanged
    assert "resumed" in [e["event"] for e in history]
    assert state["current_stage"] in ("complete", "failed")
    assert history[-1]["event"] in ("completed", "failed")
    assert (project / "calc.py").read_text() == CALC
