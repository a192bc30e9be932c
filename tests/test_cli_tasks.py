"""Driving tasks from the terminal: `run`'s progress and summary, Ctrl-C, `tasks`, `cancel`.

Every command is a real `python -m breakingwind` subprocess. The daemon is a real process with
scripted models (tests/scripted_daemon.py), so a task reaches a chosen stage in a second and can
be held there (`hang`); the in-process run uses the real embedded model.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Daemon, _free_port, daemon_config
from tests.pipeline_fixtures import (
    CALC,
    NO_TOOLS,
    TASK,
    TWO_CYCLES,
    make_project,
    plan,
)
from tests.scripted_daemon import HANG, scripted_config, start_scripted

TASK_ID = re.compile(r"Task ([0-9a-f]{16}) started")


@pytest.fixture(scope="module")
def hold_at_code(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Path]]:
    """A daemon whose coder never answers: each task stays in its code stage (four tasks)."""
    script = {
        "preprocessor": [TASK] * 4,
        "planner": [NO_TOOLS, plan()] * 4,
        "coder": [HANG] * 4,
        "reviewer": [],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKINGWIND_")}
    yield from _daemon(tmp_path_factory.mktemp("held"), _free_port(), env, script)


def _daemon(
    tmp_path: Path, port: int, env: dict[str, str], script: dict[str, Any]
) -> Iterator[tuple[Daemon, Path]]:
    project = make_project(tmp_path / "project")
    scripted_config(tmp_path, port, project)
    daemon = start_scripted(tmp_path, port, env, script)
    try:
        yield daemon, tmp_path / "config.toml"
    finally:
        daemon.stop()


def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "breakingwind", "--config", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def sigint_as_on_a_terminal() -> None:
    """A child's SIGINT as a terminal's foreground job has it: a run started as a background job
    of a non-interactive shell (a CI script's `&`) inherits SIGINT ignored, and Ctrl-C is what
    these tests send."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(config: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "breakingwind", "--config", str(config), "run", TASK, *args]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=sigint_as_on_a_terminal,
    )


def read_until(proc: subprocess.Popen[str], marker: str, seen: list[str]) -> str:
    """Read `proc`'s stdout line by line until a line holds `marker`; the text read so far."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"output ended before {marker!r}:\n{''.join(seen)}")
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within 120 s")


def finish(proc: subprocess.Popen[str], seen: list[str]) -> tuple[int, str, str]:
    """Wait for the exit; the status, all of stdout (what was read, then the rest), stderr."""
    assert proc.stdout is not None and proc.stderr is not None
    proc.wait(60)  # a few short lines: neither pipe fills up
    with proc.stdout, proc.stderr:
        return proc.returncode, "".join(seen) + proc.stdout.read(), proc.stderr.read()


def test_run_shows_stages_each_diff_and_a_closing_summary(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    for daemon, config in _daemon(tmp_path, free_port, clean_env, TWO_CYCLES):
        url = daemon.url
        proc = cli(config, clean_env, "run", TASK)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert f"(using the daemon at {url})" in out
    # The first diff is shown when it comes, before the review that rejects it.
    first_diff = out.index("Diff 1 applied to calc.py\n--- a/calc.py")
    assert first_diff < out.index("+# subtraction") < out.index("▶ review (cycle 1)")
    assert re.search(r"^  coder: \d+ tokens; code took [\d.]+s$", out, re.M)
    summary = out[out.index("Outcome: approved after") :]
    assert "cycles: 2 coder iteration(s), 2 review(s), 0 escalation(s)" in summary
    assert "tests: 2 passed, 0 failed, 0 errors (pytest)" in summary
    saved = Path(re.search(r"diff: (\S+\.diff) \(apply it with `git apply", summary)[1])
    assert "+    return a + b" in saved.read_text() and "+# subtraction" in saved.read_text()
    assert (tmp_path / "project" / "calc.py").read_text() == CALC  # shown, not applied


def test_ctrl_c_detaches_and_says_how_to_cancel(
    hold_at_code: tuple[Daemon, Path], clean_env: dict[str, str]
) -> None:
    daemon, config = hold_at_code
    proc = start_run(config, clean_env)
    seen: list[str] = []
    task_id = TASK_ID.search(read_until(proc, "▶ code", seen))[1]  # type: ignore[index]
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, seen)
    assert code == 130 and "Aborted!" not in err and "Traceback" not in err
    assert f"Stopped following task {task_id}: it goes on in the daemon" in out
    assert f"`breakingwind cancel {task_id}`" in out
    assert httpx.get(f"{daemon.url}/api/task/{task_id}").json()["current_stage"] == "code"

    listed = cli(config, clean_env, "tasks")
    assert listed.returncode == 0
    assert re.search(rf"^{task_id}  code\s+\d+s ago  Fix add\(\)", listed.stdout, re.M)

    cancelled = cli(config, clean_env, "cancel", task_id)
    assert (cancelled.returncode, cancelled.stdout) == (0, f"task {task_id} is cancelled\n")
    assert re.search(rf"^{task_id}  cancelled", cli(config, clean_env, "tasks").stdout, re.M)


def test_a_second_ctrl_c_cancels_the_task(
    hold_at_code: tuple[Daemon, Path], clean_env: dict[str, str]
) -> None:
    daemon, config = hold_at_code
    proc = start_run(config, clean_env)
    seen: list[str] = []
    task_id = TASK_ID.search(read_until(proc, "▶ code", seen))[1]  # type: ignore[index]
    proc.send_signal(signal.SIGINT)
    read_until(proc, "Press Ctrl-C again", seen)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, seen)
    assert code == 130 and "Traceback" not in err
    assert f"Task {task_id} is cancelled." in out
    assert httpx.get(f"{daemon.url}/api/task/{task_id}").json()["current_stage"] == "cancelled"


def test_cancel_of_an_ended_or_unknown_task_is_one_line(
    hold_at_code: tuple[Daemon, Path], clean_env: dict[str, str]
) -> None:
    _, config = hold_at_code
    unknown = cli(config, clean_env, "cancel", "0123456789abcdef")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert len(unknown.stderr.splitlines()) == 1 and "0123456789abcdef" in unknown.stderr


def test_tasks_without_a_daemon_says_nothing_answers(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[server]\nport = {free_port}\n[storage]\ndata_dir = 'data'\n")
    proc = cli(config, clean_env, "tasks")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"breakingwind: nothing answers at http://127.0.0.1:{free_port}")
    assert len(proc.stderr.splitlines()) == 1


def test_ctrl_c_cancels_an_in_process_run_kept_out_of_the_daemons_store(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    config = daemon_config(tmp_path, project, free_port)
    proc = start_run(config, clean_env, "--project", str(project), "--local")
    seen: list[str] = []
    task_id = TASK_ID.search(read_until(proc, "▶ preprocess", seen))[1]  # type: ignore[index]
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, seen)
    assert code == 130 and "Traceback" not in err, err
    assert f"Cancelling task {task_id} (it runs in this process)" in out
    assert not (tmp_path / "data" / "breakingwind.sqlite3").exists()  # the daemon's store
    db = sqlite3.connect(tmp_path / "data" / "local" / "breakingwind.sqlite3")
    stage = db.execute("SELECT stage FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    assert stage == ("cancelled",)


def test_on_a_terminal_a_live_line_shows_the_stage_and_elapsed_time(
    hold_at_code: tuple[Daemon, Path], clean_env: dict[str, str]
) -> None:
    _, config = hold_at_code
    controller, terminal = pty.openpty()
    argv = [sys.executable, "-m", "breakingwind", "--config", str(config), "run", TASK]
    env = {**clean_env, "TERM": "xterm-256color", "COLUMNS": "160"}
    proc = subprocess.Popen(
        argv,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        preexec_fn=sigint_as_on_a_terminal,
    )
    os.close(terminal)
    screen = b""
    live = re.compile(rb"code \xc2\xb7 cycle 1  [\d.]+s \(total [\dms. ]+\)")
    deadline = time.monotonic() + 120
    try:
        while not live.search(screen) and time.monotonic() < deadline:
            if select.select([controller], [], [], 1)[0]:
                screen += os.read(controller, 65536)
        redrawn = len(live.findall(screen))
        time.sleep(1.5)  # the line is redrawn while nothing else happens
        while select.select([controller], [], [], 0.2)[0]:
            screen += os.read(controller, 65536)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        os.close(controller)
    text = screen.decode(errors="replace")
    assert redrawn >= 1, text[-2000:]
    assert len(live.findall(screen)) > redrawn  # redrawn with a new elapsed time
    assert re.search(r"Ctrl-C to detach · task [0-9a-f]{16}", text)
