"""One workflow from the terminal (`breakingwind run`): through a running daemon when one
answers on the configured port, else in this process with its own engine and its own store.

Ctrl-C while following a daemon's task detaches: the task goes on in the daemon, the terminal
says so and how to cancel it, and a second Ctrl-C within `CANCEL_WINDOW_S` cancels it. A task run
in this process cannot outlive it: Ctrl-C cancels it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx2
from rich.console import Console

from breakingwind.config import Settings
from breakingwind.daemon_client import DaemonClient
from breakingwind.errors import BreakingWindError
from breakingwind.progress import LiveProgress, final_message
from breakingwind.runtime import open_runtime
from breakingwind.tasks import Event, TaskState, WorkflowOptions

CANCEL_WINDOW_S = 3.0


def daemon_url(settings: Settings) -> str | None:
    """The running daemon's base URL, if one answers /health on the configured address."""
    url = settings.server.url
    try:
        httpx2.get(f"{url}/health", timeout=1.0)
    except httpx2.HTTPError:
        return None
    return url


def auth_headers(settings: Settings) -> dict[str, str]:
    key = settings.server.api_key
    return {"Authorization": f"Bearer {key}"} if key else {}


def daemon_events(
    url: str, settings: Settings, task: str, project: Path, options: WorkflowOptions
) -> Iterator[Event]:
    """Start a workflow on the daemon and yield its events as they arrive."""
    body = {"input": task, "project": str(project), "options": options.model_dump()}
    with httpx2.stream(
        "POST", f"{url}/api/workflow", json=body, headers=auth_headers(settings), timeout=None
    ) as response:
        if response.status_code != 200:
            response.read()
            raise BreakingWindError(response.json()["error"]["message"])
        task_id = response.headers["x-task-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                yield Event(task_id=task_id, seq=0, type=data["type"], data=data)


def run_via_daemon(
    url: str,
    settings: Settings,
    task: str,
    project: Path,
    options: WorkflowOptions,
    progress: LiveProgress,
) -> TaskState:
    try:
        for event in daemon_events(url, settings, task, project, options):
            progress.show(event)
    except KeyboardInterrupt:
        progress.stop()
        if progress.task_id is None:
            raise
        _detach(url, settings, progress)
        raise
    progress.stop()
    assert progress.task_id is not None
    answer = httpx2.get(
        f"{url}/api/task/{progress.task_id}", headers=auth_headers(settings), timeout=30
    )
    return TaskState.model_validate(answer.json())


def _detach(url: str, settings: Settings, progress: LiveProgress) -> None:
    """After a first Ctrl-C: say the task goes on; a second Ctrl-C soon after cancels it."""
    task_id = progress.task_id or ""
    again = _SecondInterrupt()
    with again:  # from here on a Ctrl-C is counted, never raised mid-print
        progress.console.print(
            f"\nStopped following task {task_id}: it goes on in the daemon at {url}.\n"
            f"Press Ctrl-C again within {CANCEL_WINDOW_S:g} s to cancel it; later:"
            f" `breakingwind cancel {task_id}` (list tasks: `breakingwind tasks`).",
            markup=False,
            highlight=False,
        )
        deadline = time.monotonic() + CANCEL_WINDOW_S
        while not again.seen and time.monotonic() < deadline:
            time.sleep(0.05)
    if again.seen:
        client = DaemonClient(url, settings.server.api_key, timeout_s=60)
        stage = client.cancel(task_id)["current_stage"]
        progress.console.print(f"Task {task_id} is {stage}.", markup=False)


class _SecondInterrupt:
    """Within the block, SIGINT sets `seen` instead of raising KeyboardInterrupt."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True

    def __enter__(self) -> _SecondInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


async def run_in_process(
    settings: Settings,
    task: str,
    project: Path,
    options: WorkflowOptions,
    progress: LiveProgress,
) -> TaskState:
    settings = settings.in_process("local")  # never the daemon's store
    try:
        async with open_runtime(settings) as runtime:
            state = runtime.pipeline.submit(task, project, options)
            try:
                async for event in runtime.store.follow(state.task_id):
                    progress.show(event)
            except asyncio.CancelledError:  # Ctrl-C: the task cannot outlive this process
                progress.stop()
                progress.console.print(
                    f"\nCancelling task {state.task_id} (it runs in this process)."
                )
                await runtime.pipeline.cancel(state.task_id)
                raise
            return await runtime.pipeline.wait(state.task_id)
    finally:
        progress.stop()


def run_workflow(
    settings: Settings,
    task: str,
    project: Path,
    options: WorkflowOptions,
    console: Console,
    local: bool = False,
    show_tokens: bool = False,
) -> TaskState:
    """Run `task` with live progress on `console`; returns the final state. A Ctrl-C ends in
    KeyboardInterrupt once the task was detached from (daemon) or cancelled (in process)."""
    url = None if local else daemon_url(settings)
    with LiveProgress(console, show_tokens) as progress:
        if url is not None:
            console.print(f"(using the daemon at {url})", markup=False)
            state = run_via_daemon(url, settings, task, project, options, progress)
        else:
            state = asyncio.run(run_in_process(settings, task, project, options, progress))
    console.print("\n" + final_message(state) + "\n", markup=False, highlight=False)
    console.print(progress.summary(state, save_diff(settings, state)), markup=False)
    return state


def save_diff(settings: Settings, state: TaskState) -> Path | None:
    """Write the final diff to `<data_dir>/diffs/<task>.diff` unless it is empty or applied."""
    report = state.final_output
    if report is None or not report.diff.strip() or report.applied_to_project:
        return None
    path = settings.storage.data_dir / "diffs" / f"{state.task_id}.diff"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.diff if report.diff.endswith("\n") else report.diff + "\n")
    except OSError:
        return None
    return path
