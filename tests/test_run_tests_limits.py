"""A hostile test suite against run_tests' limits, through the daemon's REST tool route.

The suites are probes: each one tries to escape (fork without end, eat memory, raise its own
limits), stops at a hard cap of its own so that it cannot hurt the machine if a limit fails, and
reports how far it got in its failure message, which the tool returns.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from breakingwind.api.app import create_app
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.tools.sandboxed_process import run_as_for, unreachable_ancestor
from tests.conftest import LiveServer, make_settings

MAX_PROCESSES = 16
MEMORY_MB = 512
FORK_CAP = 200  # far below the machine's pid_max, whatever happens
TOUCH_CAP_MB = 1024

FORK_BOMB = f"""
import os, signal, time

import pytest


def test_forks_without_end():
    children, refused = [], "nothing"
    try:
        while len(children) < {FORK_CAP}:
            pid = os.fork()
            if pid == 0:
                time.sleep(60)  # hold the process slot
                os._exit(0)
            children.append(pid)
    except OSError as exc:
        refused = os.strerror(exc.errno)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    pytest.fail(f"forked {{len(children)}} of {FORK_CAP}; refused by: {{refused}}")
"""

MEMORY_EATER = f"""
import mmap, resource

import pytest


def test_eats_memory():
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
        raised = "yes"
    except (ValueError, OSError):
        raised = "no"
    try:
        mmap.mmap(-1, 16 << 30).close()  # 16 GB of address space, never touched
        reserved = "yes"
    except (OSError, MemoryError):
        reserved = "no"
    blocks = []
    try:
        while len(blocks) * 64 < {TOUCH_CAP_MB}:
            blocks.append(bytearray(64 << 20))  # zero-filled: every page is touched
    except MemoryError:
        pass
    touched = len(blocks) * 64
    blocks.clear()
    pytest.fail(f"raised limit: {{raised}}; reserved 16 GB: {{reserved}}; touched {{touched}} MB")
"""


def limited_settings(tmp_path: Path, isolate: bool) -> Settings:
    project = tmp_path / "project"
    for case, text in {
        "forkbomb": FORK_BOMB,
        "memory": MEMORY_EATER,
        "ok": "def test_ok():\n    assert True\n",
    }.items():
        (project / "cases" / case).mkdir(parents=True)
        (project / "cases" / case / f"test_{case}.py").write_text(text)
    extra = f"""
[tools.run_tests]
max_processes = {MAX_PROCESSES}
memory_mb = {MEMORY_MB}
coverage = false
timeout_s = 60
isolate_network = {str(isolate).lower()}
"""
    return make_settings(tmp_path, extra, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})


@pytest.fixture(params=[True, False], ids=["namespaces", "no-namespaces"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    settings = limited_settings(tmp_path, isolate=request.param)
    run_as = run_as_for(settings.tools.run_tests)
    prefix = Path(os.path.realpath(sys.executable)).parent.parent
    if not request.param and unreachable_ancestor(prefix, run_as) is not None:
        pytest.skip(
            f"without namespaces the tests run as {run_as and run_as.name} with no capability,"
            f" and this interpreter ({prefix}) is out of that user's reach"
        )
    # The scratch copies go here, so that a leftover process is recognisably this test's.
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    engine = Engine(settings)  # never started: only the tools are used
    with LiveServer(create_app(settings, engine)) as live:
        yield live
    engine.close()


def run_tests(server: LiveServer, case: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/api/mcp/tool",
        json={"name": "run_tests", "arguments": {"workspace": f"cases/{case}"}},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()["result"]


def probe_report(result: dict[str, Any]) -> str:
    assert (result["failed"], result["timed_out"]) == (1, False), result["output"]
    return result["failures"][0]["message"]


def leftover_test_processes(tmp_path: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(tmp_path) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_a_fork_bomb_is_stopped_at_the_process_limit(server: LiveServer, tmp_path: Path) -> None:
    own_limits = resource.getrlimit(resource.RLIMIT_NPROC)
    result = run_tests(server, "forkbomb")
    report = probe_report(result)
    forked = int(re.search(r"forked (\d+) of", report).group(1))
    # Some forks succeed (the probe works), then the kernel refuses: EAGAIN at the budget.
    assert 0 < forked < MAX_PROCESSES, report
    assert "Resource temporarily unavailable" in report
    assert result["isolation"]["user"] != "root"  # root would ignore RLIMIT_NPROC
    assert result["isolation"]["limits"]["RLIMIT_NPROC"] >= MAX_PROCESSES
    # The daemon: same limits, no test process left, and it serves the next run normally.
    assert resource.getrlimit(resource.RLIMIT_NPROC) == own_limits
    assert leftover_test_processes(tmp_path) == []
    assert run_tests(server, "ok")["passed"] == 1


def test_a_memory_eater_is_stopped_at_the_address_space_limit(server: LiveServer) -> None:
    own_limits = resource.getrlimit(resource.RLIMIT_AS)
    before = psutil.Process().memory_info().rss
    result = run_tests(server, "memory")
    report = probe_report(result)
    touched = int(re.search(r"touched (\d+) MB", report).group(1))
    assert "raised limit: no" in report  # it cannot lift its own limit (root could)
    assert "reserved 16 GB: no" in report
    assert 0 < touched < MEMORY_MB, report
    assert result["isolation"]["limits"]["RLIMIT_AS"] == MEMORY_MB * 1024 * 1024
    assert resource.getrlimit(resource.RLIMIT_AS) == own_limits
    assert psutil.Process().memory_info().rss - before < 64 * 1024 * 1024  # not the daemon's
    assert run_tests(server, "ok")["passed"] == 1
