"""`bench --pipeline`: the eval tasks through the real pipeline (git, run_tests, SQLite), with
scripted models so that the accounting, not the model, is what is checked."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from breakingwind.engine import GenerationRequest
from breakingwind.measure.pipeline_bench import pipeline_load
from breakingwind.tasks import WorkflowOptions
from tests.conftest import make_settings, scripted_engine
from tests.pipeline_fixtures import NO_TOOLS, code, plan, review

CALLS_PER_AGENT = 40  # more than any task of this test asks for


def _structured_or(text: str, answer: str):  # noqa: ANN202
    """Answer the structured (grammar) call with `answer`, the tool-loop turn with `text`."""
    return lambda request: answer if request.grammar else text


def _note(request: GenerationRequest) -> str:
    # a new file: applies to every eval repository, and changes nothing they test
    diff = "--- /dev/null\n+++ b/NOTES.txt\n@@ -0,0 +1 @@\n+a note\n"
    return code(diff, "NOTES.txt") if request.grammar else NO_TOOLS


def test_pipeline_bench_accounts_for_model_calls_tests_and_overhead(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine, models = scripted_engine(settings)
    answers = {
        "preprocessor": lambda request: "Make the tests pass.",
        "planner": _structured_or(NO_TOOLS, plan(["calc.py"])),
        "coder": _note,
        "reviewer": lambda request: review("approved"),
    }
    for agent, model in models.items():
        model.enqueue(*[answers[agent]] * CALLS_PER_AGENT)
    lines: list[str] = []
    try:
        figures = asyncio.run(
            pipeline_load(
                settings, engine, (1, 3), lines.append, WorkflowOptions(max_review_cycles=1)
            )
        )
    finally:
        engine.close()
    assert len([line for line in lines if re.match(r"pipeline \d task", line)]) == 2, lines
    for n in (1, 3):
        assert figures[f"pipeline_{n}_tasks_per_hour"] > 0
        # the scripted models answer at once, so the task time is the pipeline's own work and
        # the projects' real test runs; neither share can be 0 or all of it
        assert 0 < figures[f"pipeline_{n}_overhead"] < 1
    level_3 = next(line for line in lines if line.startswith("pipeline 3 task"))
    calls = int(re.search(r"\((\d+) calls\)", level_3).group(1))
    assert calls >= 3 * 4  # each task: preprocessor, planner x2, coder x2, reviewer at least
    tests_share = float(re.search(r"tests\s+([\d.]+)%", level_3).group(1))
    assert tests_share > 0  # every task ran its project's tests
    assert "ratio 3-tasks/1-task" in level_3
    # the bench observed the engine through its runtime, and stopped when it closed
    assert engine.observers == []
