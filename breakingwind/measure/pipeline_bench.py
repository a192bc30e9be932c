"""`breakingwind bench --pipeline N`: whole workflows, one at a time and N at once.

The eval tasks (evals/) run through the real pipeline — engine, SQLite store, git workspaces,
run_tests — on the configured models. Per level: tasks/hour, mean task latency, and where each
task's wall time went: inside model calls (queueing for the model included), running the
project's tests, and the rest, which is the pipeline's own overhead (state and events in SQLite,
workspaces, diffs, the planner's code-reading tools, prompts). The bench times the model calls
and test runs by wrapping `Engine.complete` and `Pipeline._run_tests` of its own instances; a
context variable set before each submit tells whose call it was (asyncio tasks copy it).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.measure.evals import load_eval_tasks, prepare_project
from breakingwind.pipeline import Pipeline
from breakingwind.projects import allowing
from breakingwind.runtime import Timing, open_runtime
from breakingwind.tasks import WorkflowOptions


@dataclass
class _Spent:
    model_s: float = 0.0
    tests_s: float = 0.0
    model_calls: int = 0


@dataclass
class _Accounts:
    by_task: dict[str | None, _Spent] = field(default_factory=lambda: defaultdict(_Spent))

    def add(self, timing: Timing) -> None:
        spent = self.by_task[timing.task_id]
        if timing.kind == "model":
            spent.model_s += timing.seconds
            spent.model_calls += 1
        else:
            spent.tests_s += timing.seconds


@dataclass(frozen=True)
class LevelFigures:
    tasks: int
    completed: int
    wall_s: float
    latencies_s: list[float]
    model_s: float  # summed over tasks
    tests_s: float
    model_calls: int
    endings: list[str]  # the stage (and reason) of every task that did not complete

    @property
    def tasks_per_hour(self) -> float:
        return self.tasks / self.wall_s * 3600 if self.wall_s else 0.0

    @property
    def overhead_share(self) -> float:
        total = sum(self.latencies_s)
        return (total - self.model_s - self.tests_s) / total if total else 0.0


async def _level(
    pipeline: Pipeline, accounts: _Accounts, n: int, scratch: Path, options: WorkflowOptions
) -> LevelFigures:
    evals = load_eval_tasks()
    submitted: dict[str, float] = {}
    started = time.perf_counter()
    for index in range(n):
        task = evals[index % len(evals)]
        project = prepare_project(task, scratch / f"{n}-{index}-{task.name}")
        state = pipeline.submit(task.spec.task, project, options)
        submitted[state.task_id] = time.perf_counter()

    async def finish(task_id: str) -> tuple[float, str]:
        state = await pipeline.wait(task_id)
        ended = state.current_stage
        if ended != "complete" and state.error_message:
            ended += f" ({state.error_message[:80]})"
        return time.perf_counter() - submitted[task_id], ended

    ends = await asyncio.gather(*(finish(task_id) for task_id in submitted))
    spent = [accounts.by_task[task_id] for task_id in submitted]
    return LevelFigures(
        tasks=n,
        completed=sum(ended == "complete" for _, ended in ends),
        endings=sorted(ended for _, ended in ends if ended != "complete"),
        wall_s=time.perf_counter() - started,
        latencies_s=[latency for latency, _ in ends],
        model_s=sum(s.model_s for s in spent),
        tests_s=sum(s.tests_s for s in spent),
        model_calls=sum(s.model_calls for s in spent),
    )


async def pipeline_load(
    settings: Settings,
    engine: Engine,
    levels: tuple[int, ...],
    echo: Callable[[str], None],
    options: WorkflowOptions | None = None,
) -> dict[str, float]:
    """Run each level (that many tasks submitted at once) and print one line per level."""
    options = options or WorkflowOptions()
    accounts = _Accounts()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="breakingwind-bench-pipeline-") as scratch:
        storage = settings.storage.model_copy(update={"data_dir": Path(scratch) / "data"})
        own = allowing(settings.model_copy(update={"storage": storage}), Path(scratch))
        async with open_runtime(own, engine=engine) as runtime:
            runtime.observe(accounts.add)
            pipeline = runtime.pipeline
            base = None
            for n in levels:
                level = await _level(pipeline, accounts, n, Path(scratch), options)
                base = base or level.tasks_per_hour
                figures[f"pipeline_{n}_tasks_per_hour"] = level.tasks_per_hour
                figures[f"pipeline_{n}_overhead"] = level.overhead_share
                total = sum(level.latencies_s)
                echo(
                    f"pipeline {n} task(s) at once: {level.completed}/{n} complete,"
                    f" {level.tasks_per_hour:7.1f} tasks/hour, mean latency"
                    f" {statistics.mean(level.latencies_s):6.1f} s; of task time: model calls"
                    f" {level.model_s / total:.1%} ({level.model_calls} calls), tests"
                    f" {level.tests_s / total:.1%}, pipeline overhead {level.overhead_share:.1%}"
                    f" ({total - level.model_s - level.tests_s:.1f} s)"
                    f"   ratio {n}-tasks/1-task {level.tasks_per_hour / base:.2f}"
                )
                for ending in level.endings:
                    echo(f"pipeline   not complete: {ending}")
    return figures
