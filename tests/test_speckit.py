"""spec-kit: command files where spec-kit expects them, and specify → plan → implement on a
fixture spec-kit project, with scripted agents in the real engine, pipeline, workspace and tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from click.testing import CliRunner

from breakingwind.cli import main
from breakingwind.speckit import (
    MARKER,
    find_feature,
    implement_feature,
    plan_feature,
    read_tasks,
    specify,
)
from breakingwind.tasks import TaskState, WorkflowOptions
from tests.conftest import Harness, make_harness
from tests.pipeline_fixtures import (
    CALC,
    COMMENT_DIFF,
    FIX_DIFF,
    NO_TOOLS,
    code,
    make_project,
    plan,
    review,
)

T = TypeVar("T")
HAND_WRITTEN = "---\ndescription: my own specify\n---\n\nDo it my way: $ARGUMENTS\n"
DESCRIPTION = "Make add() in calc.py return the sum of its arguments"


def two_steps() -> str:
    """A plan whose second step depends on the first, listed first to test the ordering."""
    return json.dumps(
        {
            "task_breakdown": [
                {
                    "id": "2",
                    "description": "Document sub()",
                    "priority": "low",
                    "dependencies": ["1"],
                    "estimated_complexity": "low",
                },
                {
                    "id": "1",
                    "description": "Make add() return a + b",
                    "priority": "high",
                    "dependencies": [],
                    "estimated_complexity": "low",
                },
            ],
            "codebase_context": {
                "relevant_files": ["calc.py"],
                "architecture_notes": "One module, calc.py, with two functions.",
                "test_requirements": ["tests/test_calc.py passes"],
            },
        }
    )


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A spec-kit project: .specify/ and a hand-written Claude command already there."""
    project = make_project(tmp_path / "project")
    (project / ".specify" / "memory").mkdir(parents=True)
    (project / ".specify" / "memory" / "constitution.md").write_text("# Constitution\n")
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / ".claude" / "commands" / "speckit.specify.md").write_text(HAND_WRITTEN)
    harness = make_harness(tmp_path, project)
    yield harness
    harness.engine.close()


def run_task(h: Harness) -> Callable[[str], TaskState]:
    """One workflow with apply, like `breakingwind run --apply --local`."""
    return lambda text: h.run(WorkflowOptions(apply=True), task=text)[0]


def run_specify(h: Harness, description: str = DESCRIPTION) -> Path:
    h.script("preprocessor", description)
    h.script("planner", plan())
    return h.in_runtime(lambda runtime: specify(runtime, h.project, description))


def run_plan(h: Harness) -> Path:
    h.script("planner", NO_TOOLS, two_steps())
    return h.in_runtime(lambda runtime: plan_feature(runtime, h.project, None))


def test_init_writes_command_files_where_spec_kit_expects_them(harness: Harness) -> None:
    result = CliRunner().invoke(main, ["speckit", "init", str(harness.project)])
    assert result.exit_code == 0, result.output
    expected = [
        f"{folder}/speckit.{name}{suffix}"
        for folder, suffix in [
            (".claude/commands", ".md"),
            (".cursor/commands", ".md"),
            (".windsurf/workflows", ".md"),
            (".github/prompts", ".prompt.md"),
        ]
        for name in ("specify", "plan", "implement")
    ]
    for relative in expected:
        front_matter = (harness.project / relative).read_text().split("---\n")[1]
        assert yaml.safe_load(front_matter)["description"], relative
    text = (harness.project / ".cursor/commands/speckit.specify.md").read_text()
    assert text.startswith('---\ndescription: "Create a feature specification')
    assert "$ARGUMENTS" in text
    assert 'breakingwind speckit specify "$ARGUMENTS"' in text
    assert (
        "breakingwind speckit implement $ARGUMENTS"
        in (harness.project / ".github/prompts/speckit.implement.prompt.md").read_text()
    )


def test_init_keeps_existing_spec_kit_files(harness: Harness) -> None:
    result = CliRunner().invoke(
        main, ["speckit", "init", str(harness.project), "--agent", "claude"]
    )
    assert result.exit_code == 0, result.output
    assert (harness.project / ".claude/commands/speckit.specify.md").read_text() == HAND_WRITTEN
    assert "kept" in result.output
    assert (harness.project / ".specify/memory/constitution.md").read_text() == "# Constitution\n"
    assert MARKER in (harness.project / ".claude/commands/speckit.plan.md").read_text()
    assert not (harness.project / ".cursor").exists()


def test_init_again_updates_its_own_files_and_force_replaces_others(harness: Harness) -> None:
    runner = CliRunner()
    runner.invoke(main, ["speckit", "init", str(harness.project), "--agent", "claude"])
    again = runner.invoke(main, ["speckit", "init", str(harness.project), "--agent", "claude"])
    assert "updated" in again.output
    assert (harness.project / ".claude/commands/speckit.specify.md").read_text() == HAND_WRITTEN
    forced = runner.invoke(
        main, ["speckit", "init", str(harness.project), "--agent", "claude", "--force"]
    )
    assert forced.exit_code == 0
    assert MARKER in (harness.project / ".claude/commands/speckit.specify.md").read_text()


def test_specify_writes_numbered_spec_folders(harness: Harness) -> None:
    first = run_specify(harness)
    second = run_specify(harness, "Add a multiply function")
    assert first == harness.project / "specs" / "001-add-calc-py-return"
    assert second.parent == first.parent and second.name.startswith("002-")
    spec = (first / "spec.md").read_text()
    assert spec.startswith(f"# Feature Specification: {DESCRIPTION}")
    assert "## User Scenarios & Testing" in spec
    assert "### User Story 1 - Make add() return a + b (Priority: P1)" in spec
    assert "**FR-001**: The system MUST make add() return a + b" in spec
    assert "**SC-001**: tests/test_calc.py passes" in spec


def test_plan_writes_plan_and_tasks_in_dependency_order(harness: Harness) -> None:
    run_specify(harness)
    folder = run_plan(harness)
    assert folder == find_feature(harness.project, "001")
    tasks_md = (folder / "tasks.md").read_text()
    assert "- [ ] T001 Make add() return a + b\n" in tasks_md
    assert "- [ ] T002 Document sub() (after T001)" in tasks_md
    assert [t.task_id for t in read_tasks(folder / "tasks.md")] == ["T001", "T002"]
    plan_md = (folder / "plan.md").read_text()
    assert "One module, calc.py" in plan_md and "[spec.md](spec.md)" in plan_md
    # The planner saw the spec it plans.
    prompt = harness.models["planner"].requests[-1].messages[1]["content"]
    assert "# Feature Specification:" in prompt


def test_implement_ticks_only_the_approved_task_and_applies_its_diff(harness: Harness) -> None:
    run_specify(harness)
    folder = run_plan(harness)
    # T001: approved with green tests. T002: rejected every cycle, through one escalation.
    harness.script("preprocessor", "Implement T001: make add() return a + b in calc.py")
    harness.script("planner", NO_TOOLS, plan())
    harness.script("coder", NO_TOOLS, code(FIX_DIFF))
    harness.script("reviewer", review("approved"))
    harness.script("preprocessor", "Implement T002: document sub() in calc.py")
    for _ in range(2):
        harness.script("planner", NO_TOOLS, plan())
        for _ in range(harness.settings.pipeline.max_review_cycles):
            harness.script("coder", NO_TOOLS, code(COMMENT_DIFF))
            harness.script("reviewer", review("changes_requested", "not what was asked"))
    lines: list[str] = []
    outcomes = implement_feature(folder, run_task(harness), lines.append)
    assert [(o.task_id, o.ticked) for o in outcomes] == [("T001", True), ("T002", False)]
    tasks = read_tasks(folder / "tasks.md")
    assert [(t.task_id, t.done) for t in tasks] == [("T001", True), ("T002", False)]
    assert "- [x] T001 Make add() return a + b" in (folder / "tasks.md").read_text()
    calc = (harness.project / "calc.py").read_text()
    assert "return a + b" in calc and "# subtraction" not in calc
    assert any(line.startswith("T002: not done: no approved change") for line in lines)


def test_implement_stops_at_the_first_failure_unless_keep_going(harness: Harness) -> None:
    run_specify(harness)
    folder = run_plan(harness)
    harness.script("preprocessor", "Implement T001", "Implement T002")
    for _ in range(2):  # both tasks rejected: one cycle, one escalation each
        for _ in range(2):
            harness.script("planner", NO_TOOLS, plan())
            harness.script("coder", NO_TOOLS, code(FIX_DIFF))
            harness.script("reviewer", review("changes_requested", "no"))
    harness.settings.pipeline.max_review_cycles = 1
    stopped = implement_feature(folder, run_task(harness), lambda _: None)
    assert [o.task_id for o in stopped] == ["T001"]
    kept_going = implement_feature(folder, run_task(harness), lambda _: None, keep_going=True)
    assert [(o.task_id, o.ticked) for o in kept_going] == [("T001", False), ("T002", False)]
    assert (harness.project / "calc.py").read_text() == CALC


def test_plan_without_a_spec_says_to_run_specify(harness: Harness, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(tmp_path / "config.toml"),
            "speckit",
            "plan",
            "--project",
            str(harness.project),
        ],
    )
    assert result.exit_code == 1
    assert "no feature folders" in result.output and "run specify first" in result.output
