"""Finished tasks leave no workspace behind: folders under data_dir/workspaces and the project's
git worktrees are counted before and after tasks, with retention on, and after a SIGKILL."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx

from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.engine.scripted import ScriptedModel
from breakingwind.runtime import open_runtime
from breakingwind.tasks import TaskState
from tests.conftest import make_settings, scripted_engine, sse_events, started, watch_until
from tests.pipeline_fixtures import FIX_DIFF, NO_TOOLS, TASK, code, make_project, plan, review
from tests.scripted_daemon import HANG, scripted_config, start_scripted

TASKS = 3
APPROVED = {
    "preprocessor": [TASK],
    "planner": [NO_TOOLS, plan()],
    "coder": [NO_TOOLS, code(FIX_DIFF)],
    "reviewer": [review("approved")],
}


def worktrees(project: Path) -> int:
    """How many worktrees git records for `project` (its own tree included)."""
    listing = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return listing.count("worktree ")


def folders(settings: Settings) -> int:
    parent = settings.storage.data_dir / "workspaces"
    return len(list(parent.iterdir())) if parent.is_dir() else 0


def run_tasks(
    settings: Settings, engine: Engine, models: dict[str, ScriptedModel], project: Path, n: int
) -> tuple[list[TaskState], int, int]:
    """Run `n` approved tasks one after another; the pipeline's per-task state left after."""
    for _ in range(n):
        for agent, answers in APPROVED.items():
            models[agent].enqueue(*answers)

    async def go() -> tuple[list[TaskState], int, int]:
        async with open_runtime(settings, engine=engine) as runtime:
            finals = []
            for _ in range(n):
                state = runtime.pipeline.submit(TASK, project)
                finals.append(await runtime.pipeline.wait(state.task_id))
            return finals, len(runtime.pipeline._workspaces), len(runtime.registries)

    return asyncio.run(go())


def test_finished_tasks_leave_no_workspace_or_worktree(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    settings = make_settings(tmp_path)
    engine, models = scripted_engine(settings)
    before = worktrees(project)
    finals, live_workspaces, registries = run_tasks(settings, engine, models, project, TASKS)
    engine.close()
    assert [s.current_stage for s in finals] == ["complete"] * TASKS
    assert all(s.final_output and "return a + b" in s.final_output.diff for s in finals)
    assert worktrees(project) == before == 1
    assert folders(settings) == 0
    assert live_workspaces == 0 and registries == 0  # in-memory state released too


def test_retention_keeps_each_finished_workspace(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    settings = make_settings(tmp_path, "[pipeline]\nkeep_workspaces = true")
    engine, models = scripted_engine(settings)
    finals, _, _ = run_tasks(settings, engine, models, project, TASKS)
    engine.close()
    assert worktrees(project) == 1 + TASKS
    assert folders(settings) == TASKS
    kept = Path(finals[0].workspace or "")
    assert "return a + b" in (kept / "calc.py").read_text()


def test_after_a_sigkill_the_next_start_leaves_no_workspace(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    scripted_config(tmp_path, free_port, project)
    daemon = start_scripted(tmp_path, free_port, clean_env, {**APPROVED, "reviewer": [HANG]})
    try:
        task_id, _ = watch_until(daemon, started("review"))  # killed while its tests run
    finally:
        daemon.stop()
    data = tmp_path / "data" / "workspaces"
    assert worktrees(project) == 2 and (data / task_id).is_dir()
    # What a crash between making a workspace and recording its task would leave.
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", str(data / "unrecorded")],
        cwd=project,
        check=True,
    )
    (data / "stray-copy").mkdir()
    assert worktrees(project) == 3

    # The resumed review hangs again, so the counts below are taken while the task still runs,
    # once it has rebuilt its workspace (remove, then add: one worktree fewer in between).
    restarted = start_scripted(tmp_path, free_port, clean_env, {**APPROVED, "reviewer": [HANG]})
    try:
        wait_for_resumed_stage(restarted.url, task_id, "review")
        assert worktrees(project) == 2  # the start-up sweep: the orphans are gone
        assert sorted(p.name for p in data.iterdir()) == [task_id]  # the resumed task's stays
        cancel = httpx.post(f"{restarted.url}/api/task/{task_id}/cancel", timeout=60)
    finally:
        restarted.stop()
    assert cancel.json()["current_stage"] == "cancelled"
    assert worktrees(project) == 1
    assert list(data.iterdir()) == []


def wait_for_resumed_stage(url: str, task_id: str, stage: str, timeout: float = 60) -> None:
    """Read the task's events until, after its `resumed` event, `stage` has started again."""
    resumed = False
    with httpx.stream("GET", f"{url}/api/task/{task_id}/events", timeout=timeout) as response:
        for event in sse_events(response):
            resumed = resumed or event["event"] == "resumed"
            if resumed and started(stage)(event):
                return
    raise AssertionError(f"the resumed task never started {stage} again")
