"""`breakingwind eval`: coding tasks with hidden tests, run through the whole pipeline.

Each task's repository is copied to a fresh git repository, the workflow runs on the configured
models, the final diff is applied, and a hidden test the agents never saw decides success. Each
task's record also says how far the pipeline got (edits applied, a test run, a review, cycles,
escalation, tokens per stage), so the eval measures the pipeline, not only the model. On the
embedded model it measures the harness; with the full profile it measures quality.

A task folder (`evals/` or any folder given with `--tasks`) holds `task.toml` (`task`,
`hidden_test`, optionally `test_command`), `repo/` and `hidden/<hidden_test>`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from breakingwind.config import Settings
from breakingwind.errors import BreakingWindError, ConfigError
from breakingwind.pipeline import Pipeline
from breakingwind.projects import allowing
from breakingwind.runtime import open_runtime
from breakingwind.tasks import Event, TaskState, WorkflowOptions

EVALS_DIR = Path(__file__).resolve().parents[2] / "evals"
HIDDEN_TEST_TIMEOUT_S = 120
TICK_S = 1.0


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="What the developer asks.")
    hidden_test: str = Field(min_length=1, description="File in hidden/, copied into tests/.")
    test_command: list[str] | None = Field(
        None,
        min_length=1,
        description="Runs the hidden test in the project (default: pytest for .py, node --test"
        " for .js/.mjs/.cjs); {test} is replaced by the hidden test's path.",
    )


@dataclass(frozen=True)
class EvalTask:
    name: str
    folder: Path
    spec: EvalSpec

    @property
    def language(self) -> str:
        return "python" if self.spec.hidden_test.endswith(".py") else "javascript"


class EvalRecord(BaseModel):
    """One task's outcome (one element of `--json`'s `tasks`)."""

    task: str
    language: str
    solved: bool
    stage: str  # the terminal stage: complete, failed, cancelled
    reached_tests: bool  # the pipeline ran the project's tests at least once
    reviewed: bool  # the reviewer gave at least one review
    edits_applied: int
    edits_total: int
    iterations: int  # coder iterations
    cycles: int  # reviews
    escalated: bool
    seconds: float
    tokens: dict[str, int]  # generated tokens per stage
    detail: str


class EvalSummary(BaseModel):
    tasks: int
    solved: int
    reached_tests: int
    reviewed: int
    edits_applied: int
    edits_total: int
    cycles_per_task: float
    seconds_per_task: float
    max_seconds: float


class EvalReporter(Protocol):
    def started(self, index: int, total: int, task: EvalTask) -> None: ...

    def progress(self, index: int, total: int, task: EvalTask, stage: str, seconds: float) -> None:
        """Called about once a second while a task runs."""

    def finished(self, index: int, total: int, record: EvalRecord) -> None: ...


def load_eval_tasks(root: Path = EVALS_DIR) -> list[EvalTask]:
    """The task folders under `root` (each with a task.toml), sorted by name."""
    if not root.is_dir():
        raise ConfigError([("--tasks", f"{root} is not a folder")], source="eval tasks")
    tasks = []
    for folder in sorted(p for p in root.iterdir() if (p / "task.toml").is_file()):
        try:
            with (folder / "task.toml").open("rb") as handle:
                spec = EvalSpec.model_validate(tomllib.load(handle))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            problem = (str(folder / "task.toml"), str(exc))
            raise ConfigError([problem], source="eval tasks") from None
        if not (folder / "repo").is_dir() or not (folder / "hidden" / spec.hidden_test).is_file():
            problem = (str(folder), f"needs repo/ and hidden/{spec.hidden_test}")
            raise ConfigError([problem], source="eval tasks")
        tasks.append(EvalTask(folder.name, folder, spec))
    if not tasks:
        problem = ("--tasks", f"no task folders (with a task.toml) in {root}")
        raise ConfigError([problem], source="eval tasks")
    return tasks


async def run_evals(
    settings: Settings,
    tasks: list[EvalTask],
    options: WorkflowOptions,
    reporter: EvalReporter,
    parallel: int = 1,
) -> list[EvalRecord]:
    """Run `tasks`, up to `parallel` at once (they share each model's batched decode)."""
    settings = settings.in_process("eval")  # never the daemon's store
    slots = asyncio.Semaphore(parallel)

    async def run(pipeline: Pipeline, index: int, task: EvalTask, scratch: Path) -> EvalRecord:
        async with slots:
            reporter.started(index, len(tasks), task)
            record = await _run_one(pipeline, task, scratch, options, index, len(tasks), reporter)
            reporter.finished(index, len(tasks), record)
            return record

    with tempfile.TemporaryDirectory(prefix="breakingwind-eval-") as scratch:
        async with open_runtime(allowing(settings, Path(scratch))) as runtime:
            records = await asyncio.gather(
                *(
                    run(runtime.pipeline, index, task, Path(scratch))
                    for index, task in enumerate(tasks, 1)
                )
            )
    return list(records)


def summarize(records: list[EvalRecord]) -> EvalSummary:
    count = max(len(records), 1)
    return EvalSummary(
        tasks=len(records),
        solved=sum(r.solved for r in records),
        reached_tests=sum(r.reached_tests for r in records),
        reviewed=sum(r.reviewed for r in records),
        edits_applied=sum(r.edits_applied for r in records),
        edits_total=sum(r.edits_total for r in records),
        cycles_per_task=round(sum(r.cycles for r in records) / count, 2),
        seconds_per_task=round(sum(r.seconds for r in records) / count, 1),
        max_seconds=max((r.seconds for r in records), default=0.0),
    )


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
    pipeline: Pipeline,
    task: EvalTask,
    scratch: Path,
    options: WorkflowOptions,
    index: int,
    total: int,
    reporter: EvalReporter,
) -> EvalRecord:
    project = prepare_project(task, scratch / task.name)
    started = time.monotonic()
    state = pipeline.submit(task.spec.task, project, options)
    waiting = asyncio.ensure_future(pipeline.wait(state.task_id))
    while not waiting.done():
        await asyncio.wait([waiting], timeout=TICK_S)
        stage = pipeline.store.get(state.task_id).current_stage
        reporter.progress(index, total, task, stage, time.monotonic() - started)
    state = waiting.result()
    seconds = time.monotonic() - started
    events = pipeline.store.events_after(state.task_id, 0)
    solved, detail = False, (state.error_message or "")[:160]
    if state.current_stage == "complete":
        try:
            await pipeline.apply(state.task_id)
        except BreakingWindError as exc:
            detail = f"apply failed: {exc}"
        else:
            solved, detail = await asyncio.to_thread(_hidden_test, task, project)
    return _record(task, state, events, solved, seconds, detail)


def _record(
    task: EvalTask,
    state: TaskState,
    events: list[Event],
    solved: bool,
    seconds: float,
    detail: str,
) -> EvalRecord:
    kinds = Counter(event.type for event in events)
    diffs = [event.data for event in events if event.type == "diff"]
    tokens: Counter[str] = Counter()
    for event in events:
        if event.type == "stage_finished":
            tokens[event.data["stage"]] += int(event.data.get("tokens", 0))
    return EvalRecord(
        task=task.name,
        language=task.language,
        solved=solved,
        stage=state.current_stage,
        reached_tests=kinds["test_results"] > 0,
        reviewed=kinds["review"] > 0,
        edits_applied=sum(d.get("edits_applied", int(d["applied"])) for d in diffs),
        edits_total=sum(d.get("edits", 1) for d in diffs),
        iterations=len(diffs),
        cycles=kinds["review"],
        escalated=kinds["escalated"] > 0,
        seconds=round(seconds, 1),
        tokens=dict(tokens),
        detail=detail,
    )


def _hidden_test(task: EvalTask, project: Path) -> tuple[bool, str]:
    """Copy the hidden test into the project's tests/ and run it: (passed, last output line)."""
    hidden = project / "tests" / task.spec.hidden_test
    hidden.parent.mkdir(exist_ok=True)
    shutil.copyfile(task.folder / "hidden" / task.spec.hidden_test, hidden)
    relative = str(hidden.relative_to(project))
    command = task.spec.test_command or _default_test_command(relative)
    command = [part.replace("{test}", relative) for part in command]
    try:
        run = subprocess.run(
            command, cwd=project, capture_output=True, text=True, timeout=HIDDEN_TEST_TIMEOUT_S
        )
    except FileNotFoundError:
        return False, f"hidden test: {command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return False, f"hidden test: timed out after {HIDDEN_TEST_TIMEOUT_S}s"
    output = (run.stdout + run.stderr).strip().splitlines() or [""]
    # The runner's verdict: pytest ends with it; node --test ends with timings after "# fail N".
    verdicts = [line for line in output if re.search(r"fail|error", line, re.IGNORECASE)]
    return run.returncode == 0, f"hidden test: {(verdicts or output)[-1].strip()[:120]}"


def _default_test_command(relative: str) -> list[str]:
    if relative.endswith(".py"):
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", relative]
    return ["node", "--test", relative]


# --- output ------------------------------------------------------------------------------------


class EvalProgress:
    """`task i/N` as the eval goes: one live line on a terminal (rewritten each second), one
    line per stage change otherwise; each task's outcome as it ends."""

    def __init__(self, stream: TextIO, live: bool) -> None:
        self.stream = stream
        self.live = live
        self._stages: dict[int, str] = {}

    def started(self, index: int, total: int, task: EvalTask) -> None:
        if not self.live:
            self._write(f"task {index}/{total} {task.name} ({task.language}) started\n")

    def progress(self, index: int, total: int, task: EvalTask, stage: str, seconds: float) -> None:
        if self.live:
            self._write(f"\r\x1b[Ktask {index}/{total} {task.name}: {stage} ({seconds:.0f}s)")
        elif stage != self._stages.get(index):
            self._write(f"task {index}/{total} {task.name}: {stage} at {seconds:.0f}s\n")
        self._stages[index] = stage

    def finished(self, index: int, total: int, record: EvalRecord) -> None:
        outcome = "SOLVED" if record.solved else "not solved"
        self._write(
            ("\r\x1b[K" if self.live else "")
            + f"task {index}/{total} {record.task}: {outcome} ({record.stage},"
            f" {record.seconds:.1f}s, edits {record.edits_applied}/{record.edits_total}, tests"
            f" {'run' if record.reached_tests else 'never run'}, {record.cycles} reviews)"
            f" {record.detail}\n"
        )

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


COLUMNS = (
    ("task", 16),
    ("result", 10),
    ("stage", 9),
    ("tests", 5),
    ("review", 6),
    ("edits", 7),
    ("cycles", 6),
    ("esc", 3),
    ("seconds", 7),
    ("tokens", 6),
)


def table(records: list[EvalRecord]) -> str:
    """The records as a plain-text table."""
    rows = [[name for name, _ in COLUMNS]]
    for r in records:
        rows.append(
            [
                r.task,
                "SOLVED" if r.solved else "not solved",
                r.stage,
                "yes" if r.reached_tests else "no",
                "yes" if r.reviewed else "no",
                f"{r.edits_applied}/{r.edits_total}",
                str(r.cycles),
                "yes" if r.escalated else "no",
                f"{r.seconds:.1f}",
                str(sum(r.tokens.values())),
            ]
        )
    widths = [max(width, *(len(row[i]) for row in rows)) for i, (_, width) in enumerate(COLUMNS)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def summary_line(summary: EvalSummary) -> str:
    edits = (
        f"{summary.edits_applied}/{summary.edits_total}"
        f" ({100 * summary.edits_applied / summary.edits_total:.0f}%)"
        if summary.edits_total
        else "0/0"
    )
    return (
        f"solved {summary.solved}/{summary.tasks}, reached tests"
        f" {summary.reached_tests}/{summary.tasks}, reviewed {summary.reviewed}/{summary.tasks},"
        f" edits applied {edits}, {summary.cycles_per_task} review cycles per task,"
        f" {summary.seconds_per_task}s per task (longest {summary.max_seconds:.0f}s)"
    )


def machine() -> dict[str, object]:
    """Where the figures were measured (the load matters on a shared machine)."""
    return {"cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}
