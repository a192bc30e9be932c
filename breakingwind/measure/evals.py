"""`breakingwind eval`: coding tasks with hidden tests, run through the whole pipeline.

Each task's repository is copied to a fresh git repository, the workflow runs on the configured
models, the final diff is applied, and a hidden test the agents never saw decides success. On the
embedded model this measures the harness, not quality; with the full profile it measures quality.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from breakingwind.config import Settings
from breakingwind.errors import BreakingWindError
from breakingwind.pipeline import Pipeline
from breakingwind.projects import allowing
from breakingwind.runtime import open_runtime
from breakingwind.tasks import WorkflowOptions

EVALS_DIR = Path(__file__).resolve().parents[2] / "evals"
HIDDEN_TEST_TIMEOUT_S = 120


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    hidden_test: str


@dataclass(frozen=True)
class EvalTask:
    name: str
    folder: Path
    spec: EvalSpec


@dataclass(frozen=True)
class EvalResult:
    name: str
    stage: str
    solved: bool
    seconds: float
    detail: str


def load_eval_tasks(root: Path = EVALS_DIR) -> list[EvalTask]:
    tasks = []
    for folder in sorted(p for p in root.iterdir() if (p / "task.toml").is_file()):
        with (folder / "task.toml").open("rb") as handle:
            tasks.append(
                EvalTask(folder.name, folder, EvalSpec.model_validate(tomllib.load(handle)))
            )
    return tasks


async def run_evals(
    settings: Settings, tasks: list[EvalTask], options: WorkflowOptions, echo: Callable[[str], None]
) -> list[EvalResult]:
    settings = settings.in_process("eval")  # never the daemon's store
    results = []
    with tempfile.TemporaryDirectory(prefix="breakingwind-eval-") as scratch:
        async with open_runtime(allowing(settings, Path(scratch))) as runtime:
            for task in tasks:
                result = await _run_one(runtime.pipeline, task, Path(scratch), options)
                echo(
                    f"{result.name}: {'SOLVED' if result.solved else 'not solved'}"
                    f" ({result.stage}, {result.seconds:.1f}s) {result.detail}"
                )
                results.append(result)
    solved = sum(r.solved for r in results)
    mean = sum(r.seconds for r in results) / max(len(results), 1)
    echo(f"solved {solved}/{len(results)}, mean {mean:.1f}s per task")
    return results


def prepare_project(task: EvalTask, destination: Path) -> Path:
    """A fresh git repository holding the task's repo/ folder, one commit."""
    shutil.copytree(task.folder / "repo", destination)
    git = [
        "git",
        "-c",
        "user.name=eval",
        "-c",
        "user.email=eval@localhost",
        "-c",
        "commit.gpgSign=false",
        "-c",
        "core.hooksPath=/dev/null",
    ]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "eval task"]):
        subprocess.run([*git, *args], cwd=destination, check=True, capture_output=True)
    return destination


async def _run_one(
    pipeline: Pipeline, task: EvalTask, scratch: Path, options: WorkflowOptions
) -> EvalResult:
    project = prepare_project(task, scratch / task.name)
    started = time.monotonic()
    state = pipeline.submit(task.spec.task, project, options)
    state = await pipeline.wait(state.task_id)
    seconds = time.monotonic() - started
    if state.current_stage != "complete":
        return EvalResult(
            task.name, state.current_stage, False, seconds, (state.error_message or "")[:120]
        )
    try:
        await pipeline.apply(state.task_id)
    except BreakingWindError as exc:
        return EvalResult(task.name, state.current_stage, False, seconds, f"apply failed: {exc}")
    hidden = project / "tests" / task.spec.hidden_test
    hidden.parent.mkdir(exist_ok=True)
    shutil.copyfile(task.folder / "hidden" / task.spec.hidden_test, hidden)
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(hidden)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=HIDDEN_TEST_TIMEOUT_S,
    )
    last = (run.stdout.strip().splitlines() or [""])[-1]
    return EvalResult(
        task.name, state.current_stage, run.returncode == 0, seconds, f"hidden test: {last}"
    )
