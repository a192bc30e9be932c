"""The pipeline's branches, with scripted models in the real engine, store, workspace and tools.

Scripted models replace only the generate call (Engine.replace_model); the tests run real git
worktrees, real diffs, the real test suite of a fixture project (run_tests) and a real SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakingwind.engine.scripted import Hang
from breakingwind.errors import ProjectChanged, TaskConflict
from breakingwind.pipeline import Pipeline
from breakingwind.store import TaskStore
from breakingwind.tasks import TaskState, WorkflowOptions
from breakingwind.workspace import project_fingerprint
from tests.conftest import Harness, make_harness
from tests.pipeline_fixtures import (
    BAD_DIFF,
    CALC,
    COMMENT_DIFF,
    ESCAPE_DIFF,
    FIX_DIFF,
    FIX_DIFF_WRONG_LINES,
    NO_TOOLS,
    TASK,
    code,
    make_project,
    note,
    plan,
    review,
    tool_call,
)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = make_harness(tmp_path, make_project(tmp_path / "project"))
    harness.script("preprocessor", "Fix add() in calc.py so that tests/test_calc.py passes.")
    yield harness
    harness.engine.close()


def approve_first_time(h: Harness, diff: str = FIX_DIFF) -> None:
    h.script("planner", NO_TOOLS, plan())
    h.script("coder", NO_TOOLS, code(diff))
    h.script("reviewer", review("approved"))


def test_approved_first_time_completes_with_real_test_counts(harness: Harness) -> None:
    approve_first_time(harness)
    before = project_fingerprint(harness.project)
    final, events = harness.run()
    assert final.current_stage == "complete", final.error_message
    # Typed text needs no preprocessing: it is passed through, and the event says so.
    assert events[:3] == ["task_created", "stage_started", "stage_finished"]
    assert [e for e in events if e not in ("token", "stage_started", "stage_finished")] == [
        "task_created",
        "plan",
        "diff",
        "test_results",
        "review",
        "completed",
    ]
    tests = final.test_results[-1]
    assert (tests.runner, tests.passed, tests.failed) == ("pytest", 2, 0)  # from the real run
    assert final.review_results[-1].test_results.passed == 2
    assert "+    return a + b" in final.final_output.diff
    # The developer's tree is untouched until they ask.
    assert (harness.project / "calc.py").read_text() == CALC
    assert project_fingerprint(harness.project) == before


def test_every_transition_is_in_sqlite(harness: Harness) -> None:
    approve_first_time(harness)
    final, events = harness.run()
    db = sqlite3.connect(harness.settings.storage.database_path)
    (stage,) = db.execute("SELECT stage FROM tasks WHERE task_id = ?", (final.task_id,)).fetchone()
    seqs = [
        row[0]
        for row in db.execute(
            "SELECT seq FROM events WHERE task_id = ? ORDER BY seq", (final.task_id,)
        )
    ]
    assert stage == "complete"
    assert seqs == list(range(1, len(events) + 1))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_diff_with_wrong_line_numbers_still_applies(harness: Harness) -> None:
    approve_first_time(harness, FIX_DIFF_WRONG_LINES)
    final, _ = harness.run()
    assert final.current_stage == "complete"
    assert final.test_results[-1].failed == 0


def test_changes_requested_then_approved(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(COMMENT_DIFF), NO_TOOLS, code(FIX_DIFF))
    harness.script(
        "reviewer", review("changes_requested", "add() still subtracts"), review("approved")
    )
    final, events = harness.run()
    assert final.current_stage == "complete"
    assert [r.review_status for r in final.review_results] == ["changes_requested", "approved"]
    assert [(t.passed, t.failed) for t in final.test_results] == [(1, 1), (2, 0)]
    # The second coder prompt carried the review and the failing test.
    second = harness.models["coder"].requests[2].messages[1]["content"]
    assert "add() still subtracts" in second and "test_add" in second
    assert "# subtraction" in final.final_output.diff  # iterations accumulate


def test_diff_that_does_not_apply_goes_back_to_the_coder(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(BAD_DIFF), NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"))
    final, events = harness.run()
    assert final.current_stage == "complete"
    first, second = final.code_iterations
    assert not first.applied and "does not match the file" in first.error
    feedback = harness.models["coder"].requests[2].messages[1]["content"]
    assert "hunk 1" in feedback and "def add(x, y):" in feedback
    assert second.applied
    assert events.count("diff") == 2 and events.count("review") == 1


def test_diff_outside_the_project_is_refused(harness: Harness, tmp_path: Path) -> None:
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(ESCAPE_DIFF, "../outside.py"), NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"))
    final, _ = harness.run()
    assert "refused" in final.code_iterations[0].error
    assert not (tmp_path / "outside.py").exists()
    assert not any(p.name == "outside.py" for p in tmp_path.rglob("outside.py"))
    assert final.current_stage == "complete"


def test_three_rejections_escalate_to_the_planner_then_succeed(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan(), NO_TOOLS, plan())
    rejected = [answer for k in range(3) for answer in (NO_TOOLS, note(k))]
    harness.script("coder", *rejected, NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", *[review("changes_requested", "wrong file")] * 3, review("approved"))
    final, events = harness.run()
    assert final.current_stage == "complete", final.error_message
    assert final.escalations == 1 and events.count("escalated") == 1
    replan = harness.models["planner"].requests[2].messages[1]["content"]
    assert "Earlier attempts failed" in replan and "wrong file" in replan
    # The new plan starts from a clean workspace: the rejected diffs are gone.
    assert "notes_" not in final.final_output.diff


def test_failure_after_escalation_ends_with_a_report(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan(), NO_TOOLS, plan())
    harness.script("coder", *[a for k in range(6) for a in (NO_TOOLS, note(k))])
    harness.script("reviewer", *[review("changes_requested", "tests still fail")] * 6)
    final, events = harness.run()
    assert final.current_stage == "failed"
    assert "after 3 cycles and one escalation" in final.error_message
    report = final.final_output
    assert "notes_5.txt" in report.diff  # the diff as it stands
    assert report.test_results.failed == 1 and report.open_issues == ["tests still fail"]
    assert events[-1] == "failed" and len(final.code_iterations) == 6


def test_approval_needs_green_tests(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(COMMENT_DIFF), NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"), review("approved"))
    final, _ = harness.run()
    first = final.review_results[0]
    assert first.review_status == "changes_requested"
    assert first.overridden.startswith("approval withdrawn: 1 failed")
    assert final.current_stage == "complete"


def test_a_hung_coder_runs_out_of_time_and_the_cycle_still_tests_and_reviews(
    harness: Harness,
) -> None:
    harness.script("planner", NO_TOOLS, plan(), NO_TOOLS, plan())
    harness.script("coder", Hang(), Hang(), Hang(), Hang())  # tool turn and answer, twice
    harness.script("reviewer", review("changes_requested", "no change"))
    harness.script("reviewer", review("changes_requested", "still no change"))
    options = WorkflowOptions(stage_timeout_s=20.0, max_review_cycles=1)
    final, events = harness.run(options)
    assert final.current_stage == "failed"
    assert final.error_message == "no approved change after 1 cycles and one escalation"
    assert [i.applied for i in final.code_iterations] == [True, True]
    assert all(i.output.edits == 0 and i.output.notes for i in final.code_iterations)
    assert events.count("test_results") == 2 and events.count("review") == 2
    assert events[-1] == "failed"
    assert harness.models["coder"].busy is False  # the hung generation was cancelled


def test_cancel_stops_a_running_task(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", Hang())
    final, events = harness.run(cancel_after=1.5)
    assert final.current_stage == "cancelled"
    assert events[-1] == "cancelled"
    assert harness.models["coder"].busy is False


def test_planner_tool_calls_go_through_the_sandbox(harness: Harness) -> None:
    harness.script(
        "planner",
        tool_call("read_file", path="calc.py"),
        tool_call("read_file", path="../../etc/passwd"),
        tool_call("run_tests"),
        NO_TOOLS,
        plan(),
    )
    harness.script("coder", NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"))
    final, _ = harness.run()
    assert final.current_stage == "complete"
    requests = harness.models["planner"].requests
    results = [m["content"] for m in requests[3].messages if m["role"] == "tool"]
    assert "def add(a, b)" in results[0]
    assert results[1].startswith("error: ") and "parent_escape" in results[1]
    assert "root:" not in results[1]
    assert results[2] == "error: the tool 'run_tests' is not available here"


def test_apply_changes_the_project_only_when_asked(harness: Harness) -> None:
    approve_first_time(harness)
    final, _ = harness.run(WorkflowOptions(apply=True))
    assert final.final_output.applied_to_project
    assert "return a + b" in (harness.project / "calc.py").read_text()


def test_apply_is_refused_when_the_project_changed(harness: Harness) -> None:
    approve_first_time(harness)

    async def go() -> None:
        store = TaskStore(harness.settings.storage.database_path)
        pipeline = Pipeline(harness.settings, harness.engine, store)
        state = pipeline.submit(TASK, harness.project)
        await pipeline.wait(state.task_id)
        (harness.project / "calc.py").write_text(CALC + "\n# edited meanwhile\n")
        with pytest.raises(ProjectChanged):
            await pipeline.apply(state.task_id)
        assert "edited meanwhile" in (harness.project / "calc.py").read_text()
        (harness.project / "calc.py").write_text(CALC)
        await pipeline.apply(state.task_id)
        with pytest.raises(TaskConflict):
            await pipeline.apply(state.task_id)
        store.close()

    asyncio.run(go())
    assert "return a + b" in (harness.project / "calc.py").read_text()


def test_restart_resumes_from_the_last_completed_stage(harness: Harness) -> None:
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(COMMENT_DIFF), Hang())
    harness.script("reviewer", review("changes_requested", "add() still subtracts"))

    async def first_run() -> str:
        store = TaskStore(harness.settings.storage.database_path)
        pipeline = Pipeline(harness.settings, harness.engine, store)
        state = pipeline.submit(TASK, harness.project)
        while len(harness.models["coder"].requests) < 3:  # in the second coder iteration
            await asyncio.sleep(0.05)
        await pipeline.shutdown()  # the daemon stops mid-stage
        store.close()
        return state.task_id

    task_id = asyncio.run(first_run())
    harness.script("coder", NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"))

    async def second_run() -> tuple[TaskState, list[int], list[str]]:
        store = TaskStore(harness.settings.storage.database_path)
        pipeline = Pipeline(harness.settings, harness.engine, store)
        assert store.get(task_id).current_stage == "code"
        assert pipeline.resume_unfinished() == [task_id]
        final = await pipeline.wait(task_id)
        events = store.events_after(task_id)
        store.close()
        return final, [e.seq for e in events], [e.type for e in events]

    final, seqs, types = asyncio.run(second_run())
    assert final.current_stage == "complete"
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate
    assert types.count("plan") == 1 and "resumed" in types
    # The rebuilt workspace replayed the first (applied) diff before the second.
    assert "# subtraction" in final.final_output.diff and "a + b" in final.final_output.diff
    assert final.test_results[-1].passed == 2


def test_a_data_dir_inside_a_plain_project_is_never_copied(tmp_path: Path) -> None:
    """The daemon's data dir may live inside the project it works on (not a git repository)."""
    project = tmp_path / "plain"
    project.mkdir()
    (project / "calc.py").write_text(CALC)
    # The workspace is inspected after the task: keep it.
    harness = make_harness(project, project, "[pipeline]\nkeep_workspaces = true")
    assert harness.settings.storage.data_dir.is_relative_to(project)
    harness.script("preprocessor", "Fix add() in calc.py.")
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"))
    final, _ = harness.run(WorkflowOptions(apply=True))
    workspace = Path(final.workspace)
    assert not (workspace / "data").exists()
    assert final.final_output.applied_to_project  # its own data writes did not count as a change
    assert "return a + b" in (project / "calc.py").read_text()
    harness.engine.close()


def test_an_unchanged_workspace_is_never_approved(harness: Harness) -> None:
    same = "--- a/calc.py\n+++ b/calc.py\n@@ -1,1 +1,1 @@\n-def add(a, b):\n+def add(a, b):\n"
    harness.script("planner", NO_TOOLS, plan(), NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(same), NO_TOOLS, code(same))
    harness.script("reviewer", review("approved"), review("approved"))
    final, _ = harness.run(WorkflowOptions(max_review_cycles=1))
    assert final.current_stage == "failed"
    assert [r.overridden for r in final.review_results] == [
        "approval withdrawn: the workspace has no change"
    ] * 2
