"""SIGKILL at each stage and between stages, then a restart: the task goes on from the stage
SQLite recorded, its history replays exactly as clients saw it, and its workspace holds the
recorded diffs, each applied once.

The daemon is a real process (tests/scripted_daemon.py: `create_app` and the server config of
`breakingwind serve`) whose models are scripted, so that each run reaches its kill point in about
a second; the kill point is an event seen on the workflow stream, and a model answer that never
comes (`hang`) holds the daemon in the stage after it, so the kill lands between that event and
that answer. The embedded model's own kill test is in tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import parse_sse, started, watch_until
from tests.pipeline_fixtures import (
    CALC,
    COMMENT_DIFF,
    FIX_DIFF,
    NO_TOOLS,
    TASK,
    TWO_CYCLES,
    code,
    make_project,
    plan,
    review,
)
from tests.scripted_daemon import HANG, event, scripted_config, start_scripted

# The uninterrupted run (two cycles) is TWO_CYCLES.
WHOLE_RUN = TWO_CYCLES
# After the restart, from whichever stage it resumes: the fix, approved (twice, in case the
# resumed review sees the first diff only and its approval is withdrawn for the failing test).
AFTER_RESTART = {
    "preprocessor": [TASK],
    "planner": [NO_TOOLS, plan()],
    "coder": [NO_TOOLS, code(FIX_DIFF)],
    "reviewer": [review("approved"), review("approved")],
}
# The rebuilt workspace is inspected after the task ends: keep it.
KEEP = "[pipeline]\nkeep_workspaces = true"
FIXED = CALC.replace("return a - b", "return a + b", 1)
FIXED_AND_COMMENTED = FIXED.replace("\ndef sub", "\n# subtraction\ndef sub")


@dataclass(frozen=True)
class KillPoint:
    script: dict[str, list[Any]]
    after: Callable[[dict[str, Any]], bool]  # the daemon is killed once a client sees this


KILL_POINTS = {
    "preprocessing": KillPoint({**WHOLE_RUN, "preprocessor": [HANG]}, started("preprocess")),
    "planning": KillPoint({**WHOLE_RUN, "planner": [HANG]}, started("plan")),
    # The plan is committed (stage code); the coder has not answered.
    "plan_to_code": KillPoint({**WHOLE_RUN, "coder": [HANG]}, event("plan")),
    # The coder's answer is announced: its diff is being applied, or was just committed.
    "coder_answered": KillPoint(
        {**WHOLE_RUN, "reviewer": [HANG]},
        lambda e: e["event"] == "token" and e["data"]["agent"] == "coder",
    ),
    # The diff is committed (stage review) and the project's tests are running.
    "testing": KillPoint({**WHOLE_RUN, "reviewer": [HANG]}, started("review")),
    # The rejection is committed (stage code, cycle 2); the coder has not answered again.
    "review_to_code": KillPoint(
        {**WHOLE_RUN, "coder": [NO_TOOLS, code(COMMENT_DIFF), HANG]}, event("review")
    ),
}


def stored_at_kill(database: Path, task_id: str) -> tuple[str, int]:
    """The task's stage and event count in SQLite, which must pass its integrity check."""
    db = sqlite3.connect(database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (stage,) = db.execute("SELECT stage FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        (count,) = db.execute(
            "SELECT COUNT(*) FROM events WHERE task_id = ?", (task_id,)
        ).fetchone()
    finally:
        db.close()
    return stage, count


def leave_a_half_applied_diff(workspace: Path) -> None:
    """What a kill inside a diff's application would leave (the application takes milliseconds,
    too short to aim a kill at): a file half rewritten and a stray new file."""
    (workspace / "calc.py").write_text(FIXED_AND_COMMENTED[: len(FIXED_AND_COMMENTED) // 2])
    (workspace / "half_written.py").write_text("def half(")


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_each_transition_the_task_resumes_intact(
    point: str, tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    scripted_config(tmp_path, free_port, project, KEEP)
    kill = KILL_POINTS[point]
    daemon = start_scripted(tmp_path, free_port, clean_env, kill.script)
    try:
        task_id, seen = watch_until(daemon, kill.after)
    finally:
        daemon.stop()
    database = tmp_path / "data" / "breakingwind.sqlite3"
    stage, stored = stored_at_kill(database, task_id)
    workspace = tmp_path / "data" / "workspaces" / task_id
    if workspace.exists():  # made by the plan stage
        leave_a_half_applied_diff(workspace)

    restarted = start_scripted(tmp_path, free_port, clean_env, AFTER_RESTART)
    try:
        history = parse_sse(
            httpx.get(f"{restarted.url}/api/task/{task_id}/events", timeout=60).text
        )
        state = httpx.get(f"{restarted.url}/api/task/{task_id}").json()
    finally:
        restarted.stop()

    # Every event any client saw, unchanged, then the rest: no gap, no duplicate.
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert history[: len(seen)] == seen
    kinds = [e["event"] for e in history]
    assert kinds.count("resumed") == 1 and kinds.index("resumed") == stored
    # It resumed at the stage SQLite held at the kill, and went on from there to the end.
    assert history[stored]["data"]["stage"] == stage
    stages_after = [e["data"]["stage"] for e in history[stored:] if e["event"] == "stage_started"]
    assert stages_after[0] == stage
    assert state["current_stage"] == "complete" and kinds[-1] == "completed", state["error_message"]
    # The workspace was rebuilt: the snapshot plus each diff recorded as applied, once. The first
    # diff is there if and only if it was recorded before the kill; nothing half-written is left.
    applied = [e for e in history if e["event"] == "diff" and e["data"]["applied"]]
    first_recorded = any(e["id"] <= stored for e in applied)
    rebuilt = Path(state["workspace"])
    assert (rebuilt / "calc.py").read_text() == (FIXED_AND_COMMENTED if first_recorded else FIXED)
    assert not (rebuilt / "half_written.py").exists()
    assert sum(i["applied"] for i in state["code_iterations"]) == len(applied)
    assert (project / "calc.py").read_text() == CALC  # the developer's tree is never touched
    assert stored_at_kill(database, task_id) == ("complete", len(history))
