"""run_tests: detect the runner, run the suite in a sandbox, report real counts.

The project is copied to a scratch folder first (without `.git` and secrets files; big dependency
folders such as `.venv` are linked, not copied) and the suite runs in the workspace's place in
that copy, so nothing a test writes, inside the workspace or outside it, lands in the project.
With Linux namespaces the real project is also mounted read-only and the network is cut. See
`sandboxed_process` for the limits and the kill-on-timeout.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from breakingwind.config import RunTestsSettings
from breakingwind.errors import SandboxViolation, ToolFailed, ToolInputRejected
from breakingwind.tools.files import ALWAYS_SKIPPED
from breakingwind.tools.registry import PathArgument, ToolContext
from breakingwind.tools.sandboxed_process import (
    Isolation,
    NamespaceProbe,
    RunAs,
    Visibility,
    hand_over,
    limits_for,
    readable_by,
    run_as_for,
    run_sandboxed,
    unreachable_ancestor,
    user_name,
)
from breakingwind.tools.test_results import (
    Counts,
    TestFailure,
    coverage_percent,
    from_go_json,
    from_junit_xml,
    from_libtest,
    from_runner_output,
    from_unittest,
)

_STASH_PARENT = "/dev/shm" if os.path.isdir("/dev/shm") else None
Runner = Literal["auto", "pytest", "unittest", "npm", "yarn", "go", "cargo"]
ResultSource = Literal[
    "junit-xml", "go-json", "libtest", "unittest-output", "runner-output", "exit-code"
]


class RunTestsResult(BaseModel):
    runner: str
    command: list[str]
    workspace: str
    exit_code: int | None = Field(description="None when the run was killed at the timeout.")
    timed_out: bool
    duration_s: float
    passed: int
    failed: int
    errors: int
    skipped: int
    total: int
    failures: list[TestFailure] = Field(description="The first failures, with messages.")
    results_from: ResultSource = Field(description="What the counts were read from.")
    coverage_percent: float | None = Field(
        None, description="Line coverage (coverage.py, Python runners, when installed)."
    )
    output: str = Field(description="The runner's output (head and tail when long).")
    output_truncated: bool
    isolation: Isolation


@dataclass
class _Plan:
    runner: str
    argv: list[str]
    parse: Callable[[str, Path], tuple[Counts | None, ResultSource]]
    python: str | None = None  # the interpreter, for the coverage report


class RunTestsGate:
    """One suite at a time per registry: two runs would fight over 2 cores and the limits."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()


async def run_tests(
    ctx: ToolContext,
    workspace: Annotated[
        Path,
        PathArgument(kind="dir"),
        Field(description="Folder to run the tests in (default: the project root)."),
    ] = Path("."),
    runner: Annotated[
        Runner, Field(description="Test runner; auto detects it from the workspace.")
    ] = "auto",
    tests: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^-\x00]")]],
        Field(max_length=50, description="Only these tests (pytest node ids, go packages...)."),
    ] = [],  # noqa: B006 - pydantic copies defaults
    timeout_s: Annotated[
        float | None,
        Field(gt=0, description="Wall-clock limit (at most tools.run_tests.timeout_s)."),
    ] = None,
) -> RunTestsResult:
    """Run the project's tests (pytest, unittest, npm/yarn test, go test, cargo test, or the
    configured command) in a sandbox with a timeout, and return passed/failed/errors/skipped
    counts with failure messages, coverage when available, and the bounded output. Tests run
    in a scratch copy of the project: what they write is thrown away.
    """
    settings = ctx.settings.run_tests
    limit = min(timeout_s or settings.timeout_s, settings.timeout_s)
    run_as = run_as_for(settings)
    probe = ctx.shared(NamespaceProbe, NamespaceProbe)
    isolate = settings.isolate_network and probe.check(user_namespace=run_as is None)
    selectors = [_checked_selector(ctx, workspace, i, test) for i, test in enumerate(tests)]
    async with ctx.shared(RunTestsGate, RunTestsGate).lock:
        # Counted under the gate, so that no other run of this registry is adding processes.
        limits = await asyncio.to_thread(limits_for, settings, run_as)
        scratch = Path(tempfile.mkdtemp(prefix="breakingwind-tests-"))
        # Where the reach mounts wait while their closed ancestor is covered: outside every
        # folder a run may need to reach (the scratch folder included).
        stash = Path(tempfile.mkdtemp(prefix="breakingwind-reach-", dir=_STASH_PARENT))
        try:
            copy = scratch / "project"
            hidden = await asyncio.to_thread(_copy_project, ctx, copy, settings)
            cwd = copy / workspace.relative_to(ctx.sandbox.root)
            plan = _plan(runner, cwd, selectors, settings, scratch)
            env = _scrubbed_env(settings, scratch)
            visibility = await asyncio.to_thread(
                _visibility, ctx, plan, copy, [*hidden, ctx.data_dir], run_as, isolate
            )
            await asyncio.to_thread(hand_over, scratch, run_as)  # the tests write only here
            run = dict(
                cwd=cwd, env=env, limits=limits, max_output_bytes=settings.max_output_bytes,
                isolate=isolate, read_only=[ctx.sandbox.root], run_as=run_as,
                visibility=visibility, stash=stash,
            )  # fmt: skip
            done = await run_sandboxed(plan.argv, timeout_s=limit, **run)
            counts, source = plan.parse(done.output, scratch)
            coverage = None
            if plan.python and not done.timed_out and (scratch / ".coverage").exists():
                data, report = scratch / ".coverage", scratch / "coverage.json"
                argv = [plan.python, "-m", "coverage", "json", "-q", "--data-file", str(data)]
                await run_sandboxed([*argv, "-o", str(report)], timeout_s=60, **run)
                coverage = coverage_percent(report)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            await asyncio.to_thread(shutil.rmtree, stash, True)
    counts = counts or Counts()
    if source == "exit-code" and not done.timed_out and done.exit_code not in (None, 0):
        counts.add_failure(plan.runner, "error", f"exit code {done.exit_code}; see output")
    return RunTestsResult(
        runner=plan.runner,
        command=plan.argv,
        workspace=ctx.sandbox.relative(workspace),
        exit_code=done.exit_code,
        timed_out=done.timed_out,
        duration_s=done.duration_s,
        passed=counts.passed,
        failed=counts.failed,
        errors=counts.errors,
        skipped=counts.skipped,
        total=counts.passed + counts.failed + counts.errors + counts.skipped,
        failures=counts.failures,
        results_from=source,
        coverage_percent=coverage,
        output=done.output,
        output_truncated=done.output_truncated,
        isolation=Isolation(
            network_blocked=isolate,
            project_read_only=isolate,
            scratch_copy=True,
            limits=limits,
            user=user_name(run_as),
        ),
    )


def _copy_project(ctx: ToolContext, target: Path, settings: RunTestsSettings) -> list[Path]:
    """Copy the project without `.git`, caches, secrets and the data dir; link the dependency
    folders. Returns the secrets (and `.git` folders) left behind, for the run to hide."""
    root = ctx.sandbox.root
    secrets: list[Path] = []

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative = ctx.sandbox.relative(Path(folder))
        skipped = set()
        for name in names:
            path = name if relative == "." else f"{relative}/{name}"
            if ctx.sandbox.is_secret(path):
                skipped.add(name)
                secrets.append(Path(folder, name))
            elif name in ALWAYS_SKIPPED or name in settings.link_dirs:
                skipped.add(name)
            elif not _copyable(Path(folder, name)) or Path(folder, name) == ctx.data_dir:
                skipped.add(name)  # devices, FIFOs, sockets and the data dir are never copied
        return skipped

    try:
        shutil.copytree(root, target, symlinks=True, ignore=ignore)
    except (OSError, shutil.Error) as exc:
        raise ToolFailed(f"could not copy the project to a scratch folder: {exc}") from None
    for folder, _, _ in os.walk(root):
        here = Path(folder)
        if any(part in ALWAYS_SKIPPED for part in here.relative_to(root).parts):
            continue
        for name in settings.link_dirs:
            source = here / name
            destination = target / source.relative_to(root)
            if source.is_dir() and not destination.exists() and destination.parent.is_dir():
                # To the real folder: a workspace's own link lies in the data dir, hidden.
                destination.symlink_to(os.path.realpath(source), target_is_directory=True)
    return secrets


def _visibility(
    ctx: ToolContext,
    plan: _Plan,
    copy: Path,
    hidden: list[Path],
    run_as: RunAs | None,
    isolate: bool,
) -> Visibility:
    """What to hide from the tests and what to make reachable; without namespaces, refuse to
    run where they could read a secret (unless `visible_secrets = "allow"`) or could not reach
    the runner (no capability lets them any more)."""
    needed = [copy.parent, *_runner_paths(plan, copy)]  # the scratch folder, the runner
    if isolate:
        reach = []
        for path in needed:
            ancestor = unreachable_ancestor(path, run_as)
            if ancestor is not None:
                reach.append((ancestor, path))
        return Visibility(hide=hidden, reach=reach)
    visible = [p for p in hidden if p.exists() and readable_by(p, run_as)]
    if visible and ctx.settings.run_tests.visible_secrets == "refuse":
        names = ", ".join(ctx.sandbox.relative(p) for p in visible[:5] if ctx.sandbox.contains(p))
        raise ToolFailed(
            "the tests could read secrets here (no Linux mount namespace to hide them): "
            f"{names or 'the data dir'}; run where `unshare` works, make them unreadable to"
            f' {user_name(run_as)}, or set tools.run_tests.visible_secrets = "allow"'
        )
    for path in needed:
        if unreachable_ancestor(path, run_as) is not None:
            raise ToolFailed(
                f"the tests run as {user_name(run_as)}, who cannot reach {path} (without Linux"
                " namespaces nothing can make it reachable); install the interpreter where that"
                " user can read it, or run where `unshare` works"
            )
    return Visibility()


def _runner_paths(plan: _Plan, copy: Path) -> list[Path]:
    """The folders the run needs: the runner's installation, a virtualenv, linked folders."""
    paths: list[Path] = []
    program = plan.argv[0] if "/" in plan.argv[0] else shutil.which(plan.argv[0])
    if program:
        real = Path(os.path.realpath(program))
        paths.append(real.parent.parent)  # the installation prefix (bin/..)
        venv = Path(program).parent.parent
        if (venv / "pyvenv.cfg").is_file():
            paths.append(Path(os.path.realpath(venv)))
    for folder, dirs, _ in os.walk(copy):
        for name in dirs:
            link = Path(folder, name)
            if link.is_symlink():
                paths.append(Path(os.path.realpath(link)))
        dirs[:] = [d for d in dirs if not Path(folder, d).is_symlink()]
    return sorted(set(paths))


_TEST_NAME = re.compile(r"^[A-Za-z_]\w*(?:(?:\.|::)[A-Za-z_]\w*)*(?:\[[^\x00-\x1f]*\])?$")


def _checked_selector(ctx: ToolContext, workspace: Path, index: int, test: str) -> str:
    """`test` if it is a test id inside the project: a path (pytest `file::name[param]`, a
    unittest or jest file, a go package `./pkg/...`) that passes the sandbox, or a plain test
    name (`pkg.mod.Class.test`, `mod::test`). Never an option or an `@argfile`."""
    argument = f"tests[{index}]"
    if test[0] in "@-+" or any(ord(c) < 32 for c in test):
        raise ToolInputRejected(
            f"{argument}={test!r} is not a test id (options and @files are refused)"
        )
    head = test.split("::", 1)[0]
    head = head.removesuffix("/...") if head not in ("...", "./...") else "."
    looks_like_path = "/" in head or head.startswith(".") or (workspace / head).exists()
    if looks_like_path or head.endswith((".py", ".js", ".ts", ".go", ".rs")):
        try:
            ctx.sandbox.resolve_inside_project(
                workspace / head if not Path(head).is_absolute() else head,
                argument=argument,
                must_exist=False,
            )
        except SandboxViolation as exc:
            raise SandboxViolation(exc.rule, argument, test, str(exc).split(": ", 1)[-1]) from None
        return test
    if not _TEST_NAME.match(test):
        raise ToolInputRejected(
            f"{argument}={test!r} is neither a path inside the project nor a test name"
        )
    return test


def _copyable(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


def _scrubbed_env(settings: RunTestsSettings, scratch: Path) -> dict[str, str]:
    home = scratch / "home"
    (home / "tmp").mkdir(parents=True)
    env = {name: os.environ[name] for name in settings.pass_env if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {
        **env,
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "CI": "1",
        "NO_COLOR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "CARGO_TARGET_DIR": str(scratch / "cargo-target"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "npm_config_offline": "true",
    }


def _python_for(cwd: Path) -> str:
    """The workspace's own virtualenv interpreter when there is one, else the daemon's."""
    for folder in (cwd, *cwd.parents):
        for venv in (".venv", "venv"):
            candidate = folder / venv / "bin" / "python"
            if candidate.exists():
                return str(candidate)
        if (folder / ".git").exists() or folder == folder.parent:
            break
    return sys.executable


def _plan(
    runner: Runner, cwd: Path, tests: list[str], settings: RunTestsSettings, scratch: Path
) -> _Plan:
    if runner == "auto" and settings.command:
        junit = cwd / settings.junit_xml if settings.junit_xml else None
        return _Plan("configured", list(settings.command), _parse_configured(junit))
    chosen = runner if runner != "auto" else _detect(cwd)
    if chosen is None:
        raise ToolInputRejected(
            "no test runner detected in the workspace (pytest, unittest, npm/yarn, go, cargo); "
            "pass runner or set tools.run_tests.command"
        )
    return _PLANNERS[chosen](cwd, tests, settings, scratch)


def _detect(cwd: Path) -> str | None:
    package = cwd / "package.json"
    if package.is_file():
        try:
            scripts = json.loads(package.read_text()).get("scripts", {})
        except (OSError, ValueError):
            scripts = {}
        if "test" in scripts:
            return "yarn" if (cwd / "yarn.lock").is_file() else "npm"
    if (cwd / "go.mod").is_file():
        return "go"
    if (cwd / "Cargo.toml").is_file():
        return "cargo"
    python_tests = (
        any(cwd.glob("test*.py"))
        or any(cwd.glob("tests/**/*.py"))
        or any((cwd / name).is_file() for name in ("conftest.py", "pytest.ini", "pyproject.toml"))
    )
    if python_tests:
        return "pytest" if _has_module(_python_for(cwd), "pytest") else "unittest"
    return None


def _has_module(python: str, module: str) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    code = f"import importlib.util, sys; sys.exit(not importlib.util.find_spec({module!r}))"
    probe = [python, "-c", code]
    return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0


def _pytest_plan(cwd: Path, tests: list[str], settings: RunTestsSettings, scratch: Path) -> _Plan:
    python = _python_for(cwd)
    junit = scratch / "junit.xml"
    pytest_args = ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
    if settings.coverage and _has_module(python, "coverage"):
        argv = [python, "-m", "coverage", "run", "--data-file", str(scratch / ".coverage"),
                "--source", ".", "-m", "pytest", *pytest_args]  # fmt: skip
        return _Plan("pytest", argv, _parse_junit(junit), python)
    return _Plan("pytest", [python, "-m", "pytest", *pytest_args], _parse_junit(junit))


def _unittest_plan(cwd: Path, tests: list[str], settings: RunTestsSettings, scratch: Path) -> _Plan:
    python = _python_for(cwd)
    args = ["-m", "unittest", *(tests or ["discover"]), "-v"]
    if settings.coverage and _has_module(python, "coverage"):
        argv = [python, "-m", "coverage", "run", "--data-file", str(scratch / ".coverage"),
                "--source", ".", *args]  # fmt: skip
        return _Plan("unittest", argv, _parse_with(from_unittest, "unittest-output"), python)
    return _Plan("unittest", [python, *args], _parse_with(from_unittest, "unittest-output"))


def _node_plan(tool: str) -> Callable[[Path, list[str], RunTestsSettings, Path], _Plan]:
    def plan(cwd: Path, tests: list[str], settings: RunTestsSettings, scratch: Path) -> _Plan:
        argv = [tool, "test", *(["--", *tests] if tests else [])]
        return _Plan(tool, argv, _parse_with(from_runner_output, "runner-output"))

    return plan


def _go_plan(cwd: Path, tests: list[str], settings: RunTestsSettings, scratch: Path) -> _Plan:
    argv = ["go", "test", "-json", *(tests or ["./..."])]
    return _Plan("go", argv, _parse_with(from_go_json, "go-json"))


def _cargo_plan(cwd: Path, tests: list[str], settings: RunTestsSettings, scratch: Path) -> _Plan:
    argv = ["cargo", "test", "--offline", "--no-fail-fast", *tests]
    return _Plan("cargo", argv, _parse_with(from_libtest, "libtest"))


_PLANNERS: dict[str, Callable[[Path, list[str], RunTestsSettings, Path], _Plan]] = {
    "pytest": _pytest_plan,
    "unittest": _unittest_plan,
    "npm": _node_plan("npm"),
    "yarn": _node_plan("yarn"),
    "go": _go_plan,
    "cargo": _cargo_plan,
}


def _parse_junit(path: Path) -> Callable[[str, Path], tuple[Counts | None, ResultSource]]:
    def parse(output: str, scratch: Path) -> tuple[Counts | None, ResultSource]:
        counts = from_junit_xml(path)
        return (counts, "junit-xml") if counts is not None else (None, "exit-code")

    return parse


def _parse_with(
    reader: Callable[[str], Counts | None], source: ResultSource
) -> Callable[[str, Path], tuple[Counts | None, ResultSource]]:
    def parse(output: str, scratch: Path) -> tuple[Counts | None, ResultSource]:
        counts = reader(output)
        return (counts, source) if counts is not None else (None, "exit-code")

    return parse


def _parse_configured(
    junit: Path | None,
) -> Callable[[str, Path], tuple[Counts | None, ResultSource]]:
    def parse(output: str, scratch: Path) -> tuple[Counts | None, ResultSource]:
        if junit is not None and (counts := from_junit_xml(junit)) is not None:
            return counts, "junit-xml"
        for reader, source in _OUTPUT_READERS:
            if (counts := reader(output)) is not None:
                return counts, source
        return None, "exit-code"

    return parse


_OUTPUT_READERS: tuple[tuple[Callable[[str], Counts | None], ResultSource], ...] = (
    (from_go_json, "go-json"),
    (from_libtest, "libtest"),
    (from_unittest, "unittest-output"),
    (from_runner_output, "runner-output"),
)
