"""run_tests cannot be made to read secrets: selectors are test ids inside the project, and a test
the coder writes that tries to read `.env`, `.git/config`, /etc/shadow or the daemon's database
gets nothing, with no capability and no_new_privs (tested as root, as the daemon runs here).

The project and the data dir sit in a world-readable folder, so that only the run's own
isolation stands between the test user and the files."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakingwind.config import Settings
from breakingwind.errors import SandboxViolation, ToolFailed, ToolInputRejected
from breakingwind.store import TaskStore
from breakingwind.tasks import WorkflowOptions
from breakingwind.tools.registry import build_registry
from tests.conftest import make_settings
from tests.pipeline_fixtures import make_project

SECRET = "hunter2-TOPSECRET-7731"
TOKEN = "ghp_REMOTETOKEN42"
LEAK_TEST = """
import os, pathlib

PROJECT = {project!r}
TARGETS = [".env", "../.env", PROJECT + "/.env", PROJECT + "/.git/config",
           PROJECT + "/keys/id_rsa", "/etc/shadow", {database!r},
           {data_dir!r} + "/breakingwind.lock"]


def read(path):
    try:
        return pathlib.Path(path).read_text(errors="replace")
    except OSError as exc:
        return "refused: " + exc.strerror


def test_reads_nothing_secret():
    got = {{path: read(path) for path in TARGETS}}
    leaked = {{p: t[:40] for p, t in got.items() if not t.startswith("refused") and t.strip()}}
    assert not leaked, leaked


def test_holds_no_capability_and_no_new_privs():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[name], 16) == 0, (name, status[name])
    assert status["NoNewPrivs"].strip() == "1"
    assert os.geteuid() != 0
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    base = Path(tempfile.mkdtemp(prefix="bw-secrets-", dir="/tmp"))
    base.chmod(0o755)
    try:
        project = make_project(base / "project")
        (project / ".env").write_text(f"PASSWORD={SECRET}\n")
        (project / "keys").mkdir()
        (project / "keys" / "id_rsa").write_text(f"{SECRET}\n")
        remote = f"https://user:{TOKEN}@example.com/x.git"
        subprocess.run(["git", "remote", "add", "origin", remote], cwd=project, check=True)
        settings = make_settings(
            tmp_path,
            environ={
                "BREAKINGWIND_PROJECT_ROOT": str(project),
                "BREAKINGWIND_HOME": str(base / "data"),
            },
        )
        store = TaskStore(settings.storage.database_path)  # the daemon's database, with a secret
        store.create(f"remember {SECRET}", project, WorkflowOptions())
        store.close()
        for path in [base / "data", *(base / "data").iterdir()]:
            path.chmod(path.stat().st_mode | 0o055)  # readable by all: only isolation protects it
        leak = LEAK_TEST.format(
            project=str(project),
            database=str(settings.storage.database_path),
            data_dir=str(base / "data"),
        )
        (project / "tests" / "test_leak.py").write_text(leak)
        yield settings, project
    finally:
        shutil.rmtree(base, ignore_errors=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon runs as root here")


@needs_root
def test_a_test_that_tries_to_read_secrets_reads_nothing(world: tuple) -> None:
    settings, _ = world
    registry = build_registry(settings)
    result = asyncio.run(
        registry.call("run_tests", {"tests": ["tests/test_leak.py"], "runner": "pytest"})
    )
    assert result.isolation.network_blocked, "this machine has namespaces: they must be used"
    assert (result.passed, result.failed, result.errors) == (2, 0, 0), result.output
    assert SECRET not in result.output and TOKEN not in result.output


SELECTORS_REFUSED = {
    "@.env": ToolInputRejected, "@/etc/shadow": ToolInputRejected, "@tests/x": ToolInputRejected,
    "+x": ToolInputRejected, "tests/test_calc.py\n-p": ToolInputRejected,
    ".env": SandboxViolation, "keys/id_rsa": SandboxViolation, ".ENV": SandboxViolation,
    ".git/config": SandboxViolation, ".GIT/config::x": SandboxViolation,
    "/etc/shadow": SandboxViolation, "/etc/passwd::test": SandboxViolation,
    "../outside/test_x.py": SandboxViolation, "tests/../../x.py::t": SandboxViolation,
    "./../..": SandboxViolation, "../...": SandboxViolation, "/proc/self/environ": SandboxViolation,
    "not a test id!": ToolInputRejected, "x y": ToolInputRejected,
    "$(id)": ToolInputRejected,
}  # fmt: skip


def test_selectors_are_test_ids_inside_the_project(world: tuple) -> None:
    settings, _ = world
    registry = build_registry(settings)
    for selector, error in SELECTORS_REFUSED.items():
        with pytest.raises(error) as caught:  # noqa: PT012
            asyncio.run(registry.call("run_tests", {"tests": [selector], "runner": "pytest"}))
            pytest.fail(f"{selector!r} was run")
        assert SECRET not in str(caught.value) and "root:" not in str(caught.value), selector
    fine = ["tests/test_calc.py::test_sub"]
    result = asyncio.run(registry.call("run_tests", {"tests": fine, "runner": "pytest"}))
    assert (result.passed, result.failed) == (1, 0), result.output


@needs_root
def test_without_namespaces_visible_secrets_refuse_the_run(world: tuple) -> None:
    settings, _ = world
    tools = settings.tools.model_copy(
        update={"run_tests": settings.tools.run_tests.model_copy(update={"isolate_network": False})}
    )
    registry = build_registry(settings.model_copy(update={"tools": tools}))
    with pytest.raises(ToolFailed, match="could read secrets") as caught:
        asyncio.run(registry.call("run_tests", {"runner": "pytest"}))
    assert ".env" in str(caught.value) and SECRET not in str(caught.value)
