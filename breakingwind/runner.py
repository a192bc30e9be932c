"""One workflow from the terminal (`breakingwind run`): through a running daemon when one
answers on the configured port, else in this process with its own engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx2

from breakingwind.config import Settings
from breakingwind.errors import BreakingWindError
from breakingwind.progress import final_message, progress_line
from breakingwind.runtime import open_runtime
from breakingwind.tasks import Event, TaskState, WorkflowOptions

Echo = Callable[[str], None]


def daemon_url(settings: Settings) -> str | None:
    """The running daemon's base URL, if one answers /health on the configured address."""
    url = f"http://{settings.server.host}:{settings.server.port}"
    try:
        httpx2.get(f"{url}/health", timeout=1.0)
    except httpx2.HTTPError:
        return None
    return url


def run_via_daemon(
    url: str,
    settings: Settings,
    task: str,
    project: Path,
    options: WorkflowOptions,
    echo: Echo,
    show_tokens: bool,
) -> dict:
    headers = (
        {"Authorization": f"Bearer {settings.server.api_key}"} if settings.server.api_key else {}
    )
    body = {"input": task, "project": str(project), "options": options.model_dump()}
    task_id = ""
    with httpx2.stream(
        "POST", f"{url}/api/workflow", json=body, headers=headers, timeout=None
    ) as response:
        if response.status_code != 200:
            response.read()
            raise BreakingWindError(response.json()["error"]["message"])
        task_id = response.headers["x-task-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                event = Event(task_id=task_id, seq=0, type=data["type"], data=data)
                if show_tokens or event.type != "token":
                    echo(progress_line(event))
    return httpx2.get(f"{url}/api/task/{task_id}", headers=headers, timeout=30).json()


async def run_in_process(
    settings: Settings,
    task: str,
    project: Path,
    options: WorkflowOptions,
    echo: Echo,
    show_tokens: bool,
) -> TaskState:
    async with open_runtime(settings) as runtime:
        state = runtime.pipeline.submit(task, project, options)
        async for event in runtime.store.follow(state.task_id):
            if show_tokens or event.type != "token":
                echo(progress_line(event))
        return await runtime.pipeline.wait(state.task_id)


def run_workflow(
    settings: Settings,
    task: str,
    project: Path,
    options: WorkflowOptions,
    echo: Echo,
    local: bool = False,
    show_tokens: bool = False,
) -> TaskState:
    url = None if local else daemon_url(settings)
    if url is not None:
        echo(f"(using the daemon at {url})\n")
        state = TaskState.model_validate(
            run_via_daemon(url, settings, task, project, options, echo, show_tokens)
        )
    else:
        state = asyncio.run(run_in_process(settings, task, project, options, echo, show_tokens))
    echo("\n" + final_message(state) + "\n")
    return state
