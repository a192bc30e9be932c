"""The eval's task format, its records from a task's events, and its output (no model needed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from breakingwind.errors import ConfigError
from breakingwind.measure.evals import (
    EVALS_DIR,
    EvalSpec,
    EvalTask,
    _hidden_test,
    _record,
    load_eval_tasks,
    prepare_project,
    summarize,
    summary_line,
    table,
)
from breakingwind.tasks import Event, TaskState


def test_the_bundled_tasks_cover_python_and_javascript() -> None:
    tasks = load_eval_tasks(EVALS_DIR)
    languages = {task.language for task in tasks}
    assert len(tasks) >= 12 and languages == {"python", "javascript"}


def test_a_folder_without_tasks_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no task folders"):
        load_eval_tasks(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        load_eval_tasks(tmp_path / "missing")


def test_a_task_without_its_hidden_test_is_refused(tmp_path: Path) -> None:
    task = tmp_path / "t"
    (task / "repo").mkdir(parents=True)
    (task / "task.toml").write_text('task = "x"\nhidden_test = "test_h.py"\n')
    with pytest.raises(ConfigError, match="hidden/test_h.py"):
        load_eval_tasks(tmp_path)


@pytest.mark.parametrize("name", ["js_sum", "mean_bug"])
def test_hidden_tests_fail_on_the_unchanged_project(name: str, tmp_path: Path) -> None:
    if name.startswith("js") and shutil.which("node") is None:
        pytest.skip("node is not installed")
    task = next(t for t in load_eval_tasks(EVALS_DIR) if t.name == name)
    project = prepare_project(task, tmp_path / name)
    passed, detail = _hidden_test(task, project)
    assert not passed and detail.startswith("hidden test:")
    log = subprocess.run(["git", "log", "--oneline"], cwd=project, capture_output=True, text=True)
    assert "eval task" in log.stdout


def events(task_id: str, *pairs: tuple[str, dict]) -> list[Event]:
    return [
        Event(task_id=task_id, seq=i, type=kind, data=data)
        for i, (kind, data) in enumerate(pairs, 1)
    ]


def test_a_record_counts_what_the_pipeline_reached() -> None:
    task = load_eval_tasks(EVALS_DIR)[0]
    state = TaskState(task_id="t1", user_input="x", project="/tmp", current_stage="failed")
    record = _record(
        task,
        state,
        events(
            "t1",
            ("stage_finished", {"stage": "plan", "tokens": 120}),
            ("diff", {"applied": True, "edits": 2, "edits_applied": 2}),
            ("stage_finished", {"stage": "code", "tokens": 300}),
            ("test_results", {}),
            ("review", {}),
            ("escalated", {}),
            ("diff", {"applied": False}),  # an older event without edit counts
        ),
        solved=False,
        seconds=12.34,
        detail="",
    )
    assert (record.edits_applied, record.edits_total, record.iterations) == (2, 3, 2)
    assert record.reached_tests and record.reviewed and record.escalated
    assert record.cycles == 1 and record.tokens == {"plan": 120, "code": 300}
    summary = summarize([record])
    assert "edits applied 2/3 (67%)" in summary_line(summary)
    assert table([record]).splitlines()[1].split()[:3] == [task.name, "not", "solved"]
    assert json.loads(record.model_dump_json())["tokens"]["code"] == 300


def test_task_language_follows_the_hidden_test() -> None:
    spec = {"task": "x", "hidden_test": "h.test.js"}
    assert EvalTask("t", Path("."), EvalSpec.model_validate(spec)).language == "javascript"
