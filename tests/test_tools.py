"""Each tool through the real registry, on a real fixture project with a git history."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from breakingwind.errors import InvalidToolArguments, ToolInputRejected, UnknownTool
from breakingwind.tools.registry import ToolRegistry, build_registry
from tests.fixture_project import FILES, SUITE_COUNTS, git, project_settings


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ToolRegistry:
    return build_registry(project_settings(tmp_path_factory.mktemp("tools")))


def call(registry: ToolRegistry, name: str, **arguments: Any) -> Any:
    return asyncio.run(registry.call(name, arguments))


def test_registry_lists_six_tools_with_schemas(registry: ToolRegistry) -> None:
    described = {d.name: d for d in registry.describe()}
    assert set(described) == {
        "read_file", "analyze_codebase", "search_docs", "find_references", "git_diff", "run_tests"
    }  # fmt: skip
    read = described["read_file"]
    assert read.input_schema["required"] == ["path"]
    assert read.input_schema["additionalProperties"] is False
    assert "content" in read.output_schema["properties"]
    assert read.annotations.read_only and not described["run_tests"].annotations.read_only


def test_unknown_tool_and_bad_arguments_are_typed(registry: ToolRegistry) -> None:
    with pytest.raises(UnknownTool):
        call(registry, "rm_rf")
    with pytest.raises(InvalidToolArguments, match="start_line"):
        call(registry, "read_file", path="README.md", start_line=0)
    with pytest.raises(InvalidToolArguments, match="surprise"):
        call(registry, "read_file", path="README.md", surprise=1)


def test_read_file_returns_a_line_range(registry: ToolRegistry) -> None:
    result = call(registry, "read_file", path="pkg/core.py", start_line=6, end_line=7)
    assert result.content == 'class Engine:\n    """Spins the wheel."""\n'
    assert (result.start_line, result.end_line, result.truncated) == (6, 7, False)
    assert result.total_lines == FILES["pkg/core.py"].count("\n")


def test_read_file_truncates_at_the_size_bound(tmp_path: Path) -> None:
    settings = project_settings(tmp_path, "[tools]\nread_max_bytes = 1024\n")
    (settings.project.root / "big.txt").write_text("".join(f"line {i}\n" for i in range(1000)))
    result = call(build_registry(settings), "read_file", path="big.txt")
    assert result.truncated and len(result.content.encode()) <= 1024
    assert result.next_start_line == result.end_line + 1
    assert result.content.endswith("\n")


def test_read_file_refuses_binary_files(registry: ToolRegistry) -> None:
    (registry.context.sandbox.root / "blob.bin").write_bytes(b"\x89PNG\x00\x01")
    with pytest.raises(ToolInputRejected, match="binary"):
        call(registry, "read_file", path="blob.bin")


def test_analyze_codebase_maps_the_project(registry: ToolRegistry) -> None:
    result = call(registry, "analyze_codebase")
    modules = {m.path: m for m in result.modules}
    assert "build/generated.py" not in modules  # .gitignore
    assert ".env" not in modules
    core = modules["pkg/core.py"]
    run = next(s for s in core.symbols if s.name == "run")
    assert (run.kind, run.parent, run.line) == ("method", "Engine", 9)
    assert run.signature == "def run(self, speed: int=1) -> int"
    app = modules["web/app.js"]
    assert {(s.name, s.kind) for s in app.symbols} >= {("Widget", "class"), ("render", "method")}
    edges = {(e.source, e.target) for e in result.dependency_graph}
    assert ("pkg/util.py", "pkg/core.py") in edges and ("web/app.js", "web/math.js") in edges
    assert modules["tests/test_core.py"].is_test and "tests (2 files)" in result.test_locations
    assert {"pydantic", "pytest"} <= {f.name for f in result.frameworks}
    assert {s.language for s in result.languages} >= {"python", "javascript", "markdown"}


def test_analyze_codebase_reparses_only_changed_files(tmp_path: Path) -> None:
    registry = build_registry(project_settings(tmp_path))
    first = call(registry, "analyze_codebase")
    assert first.cache.reused == 0
    core = registry.context.sandbox.root / "pkg" / "core.py"
    core.write_text(core.read_text() + "\n\ndef added() -> None:\n    pass\n")
    os.utime(core, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = call(registry, "analyze_codebase")
    assert second.cache.parsed == 1 and second.cache.reused == first.files_total - 1
    names = {s.name for m in second.modules if m.path == "pkg/core.py" for s in m.symbols}
    assert "added" in names


def test_search_docs_ranks_docs_docstrings_and_comments(registry: ToolRegistry) -> None:
    docstring = call(registry, "search_docs", query="frobnication factor").results[0]
    assert (docstring.path, docstring.kind) == ("pkg/core.py", "docstring")
    assert docstring.title == "helper"
    rst = call(registry, "search_docs", query="quantum calibration", kinds=["docs"]).results
    assert [(h.path, h.title) for h in rst] == [("docs/guide.rst", "Guide")]
    comment = call(registry, "search_docs", query="spokes", kinds=["comment"]).results[0]
    assert comment.path == "pkg/core.py" and comment.line == 16
    js = call(registry, "search_docs", query="numbers widget").results[0]
    assert js.path == "web/math.js" and js.kind == "comment"
    assert call(registry, "search_docs", query="hunter2").results == []  # .env is never indexed


def test_search_docs_reindexes_only_changed_files(tmp_path: Path) -> None:
    registry = build_registry(project_settings(tmp_path))
    assert call(registry, "search_docs", query="wheel").reindexed_files > 1
    readme = registry.context.sandbox.root / "README.md"
    readme.write_text("# Demo\n\nNow about zeppelins.\n")
    again = call(registry, "search_docs", query="zeppelins")
    assert again.reindexed_files == 1 and again.results[0].path == "README.md"
    fallback = call(registry, "search_docs", query="zeppelins unobtainium")
    assert fallback.match == "any_term" and fallback.results


def test_find_references_resolves_python_with_jedi(registry: ToolRegistry) -> None:
    result = call(registry, "find_references", symbol="helper")
    python_defs = [(d.path, d.line) for d in result.definitions if d.method == "jedi"]
    assert python_defs == [("pkg/core.py", 14)]
    uses = {(r.path, r.line) for r in result.references if r.method == "jedi"}
    assert {("pkg/core.py", 11), ("pkg/util.py", 1), ("pkg/util.py", 6)} <= uses
    textual = [r for r in result.definitions + result.references if r.path.startswith("web/")]
    assert textual and all(r.method == "word-boundary" and not r.exact for r in textual)


def test_find_references_follows_attribute_access(registry: ToolRegistry) -> None:
    result = call(registry, "find_references", symbol="pkg.core.Engine.run")
    assert [(d.path, d.line) for d in result.definitions if d.method == "jedi"] == [
        ("pkg/core.py", 9)
    ]
    assert ("pkg/util.py", 6) in {(r.path, r.line) for r in result.references}


def test_git_diff_working_tree_against_head(registry: ToolRegistry) -> None:
    result = call(registry, "git_diff")
    assert {f.path for f in result.files} == {"README.md", "pkg/util.py"}
    assert "+# unstaged change" in result.diff and "notes.txt" in result.untracked
    assert ".env" not in result.untracked


def test_git_diff_staged_and_between_refs(registry: ToolRegistry) -> None:
    staged = call(registry, "git_diff", staged=True)
    assert [f.path for f in staged.files] == ["README.md"] and staged.target == "index"
    between = call(registry, "git_diff", base="v1", target="main")
    assert [(f.path, f.additions, f.deletions) for f in between.files] == [("pkg/core.py", 1, 1)]
    only = call(registry, "git_diff", paths=["pkg"])
    assert [f.path for f in only.files] == ["pkg/util.py"]


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-p", "main..v1", "a b", "HEAD;id"])
def test_git_diff_refuses_option_like_refs(registry: ToolRegistry, ref: str) -> None:
    with pytest.raises(ToolInputRejected, match="not a plain ref"):
        call(registry, "git_diff", base=ref)


def test_git_diff_never_runs_the_repository_config(tmp_path: Path) -> None:
    settings = project_settings(tmp_path)
    root = settings.project.root
    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {sentinel}\ncat\n")
    evil.chmod(0o755)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-commit", "fsmonitor-watchman"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {sentinel}\n")
        (hooks / hook).chmod(0o755)
    (root / ".gitattributes").write_text("*.py diff=evil filter=evil\n*.md diff=evil\n")
    with (root / ".git" / "config").open("a") as config:
        config.write(
            f'[core]\n\tfsmonitor = "{evil}"\n\thooksPath = {hooks}\n\tpager = {evil}\n'
            f'[diff "evil"]\n\tcommand = {evil}\n\ttextconv = {evil}\n'
            f'[filter "evil"]\n\tclean = {evil}\n\tsmudge = {evil}\n\trequired = true\n'
            f"[diff]\n\texternal = {evil}\n"
        )
    # The attack is real: plain git runs it.
    subprocess.run(["git", "diff", "HEAD"], cwd=root, capture_output=True, check=False)
    assert sentinel.exists()
    sentinel.unlink()
    registry = build_registry(settings)
    call(registry, "git_diff")
    call(registry, "git_diff", staged=True)
    call(registry, "git_diff", base="v1", target="main", paths=["pkg/core.py"])
    result = call(registry, "git_diff", base="v1")
    assert not sentinel.exists()
    assert "+# unstaged change" in result.diff  # the real content, not a textconv output


def test_git_diff_on_a_repository_without_commits(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    project.mkdir()
    git(project, "init", "-q")
    (project / "a.py").write_text("x = 1\n")
    git(project, "add", "a.py")
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    result = call(build_registry(settings), "git_diff", staged=True)
    assert [(f.path, f.status) for f in result.files] == [("a.py", "added")]


def test_run_tests_reports_exact_counts(registry: ToolRegistry) -> None:
    result = call(registry, "run_tests")
    got = {k: getattr(result, k) for k in SUITE_COUNTS}
    assert got == SUITE_COUNTS and result.results_from == "junit-xml"
    messages = {f.name.rsplit("::", 1)[-1]: f for f in result.failures}
    assert "one doubled is not three" in messages["test_fails_on_purpose"].message
    assert messages["test_errors_on_purpose"].kind == "error"
    assert result.coverage_percent is not None and result.coverage_percent > 50
    assert result.exit_code == 1 and not result.timed_out


def test_run_tests_kills_a_hanging_suite_at_the_timeout(registry: ToolRegistry) -> None:
    started = time.monotonic()
    result = call(registry, "run_tests", workspace="cases/hang", timeout_s=3)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 20
    leftover = subprocess.run(
        ["pgrep", "-f", "cases/hang"], capture_output=True, text=True, check=False
    )
    assert leftover.stdout == ""


def test_run_tests_cannot_change_the_project(registry: ToolRegistry) -> None:
    root = registry.context.sandbox.root
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    result = call(registry, "run_tests", workspace="escape")
    assert result.passed == 1, result.output
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before
    assert not (root / "planted.txt").exists()


def test_run_tests_runs_without_network_and_secrets(tmp_path: Path) -> None:
    settings = project_settings(tmp_path)
    probe = settings.project.root / "cases" / "probe"
    probe.mkdir(parents=True)
    (probe / "test_probe.py").write_text(
        "import os, socket\nfrom pathlib import Path\n\n"
        "def test_no_secrets():\n    assert not Path('../../.env').exists()\n\n"
        "def test_env_is_scrubbed():\n    assert 'BREAKINGWIND_PROJECT_ROOT' not in os.environ\n\n"
        "def test_no_network():\n    s = socket.socket()\n    s.settimeout(2)\n"
        "    assert s.connect_ex(('1.1.1.1', 80)) != 0\n"
    )
    os.environ["BREAKINGWIND_PROJECT_ROOT"] = "leak"
    try:
        result = call(build_registry(settings), "run_tests", workspace="cases/probe")
    finally:
        del os.environ["BREAKINGWIND_PROJECT_ROOT"]
    if not result.isolation.network_blocked:
        pytest.skip("no Linux namespaces here: the network cannot be cut")
    assert (result.passed, result.failed) == (3, 0), result.output


def test_tool_results_are_pydantic_models(registry: ToolRegistry) -> None:
    result = call(registry, "read_file", path="README.md")
    assert isinstance(result, BaseModel) and result.model_dump()["path"] == "README.md"


def test_analyze_codebase_fits_its_output_bound(tmp_path: Path) -> None:
    settings = project_settings(tmp_path, "[tools]\nmax_output_bytes = 4096\n")
    result = call(build_registry(settings), "analyze_codebase")
    assert result.modules_truncated and 0 < len(result.modules) < result.modules_total
    assert len(result.model_dump_json()) <= 4096


def test_git_in_a_removed_folder_says_so(tmp_path: Path) -> None:
    """subprocess raises the same FileNotFoundError for a missing program and a missing cwd."""
    from breakingwind.errors import ToolFailed
    from breakingwind.gitcmd import HardenedGit

    gone = tmp_path / "gone"
    gone.mkdir()
    git = HardenedGit(gone, timeout_s=10)
    gone.rmdir()
    with pytest.raises(ToolFailed, match="working folder does not exist") as caught:
        git.run(["status"])
    assert str(tmp_path) not in str(caught.value)  # no host path in the message


@pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")), reason="node and npm are not installed"
)
def test_run_tests_counts_a_node_test_suite(tmp_path: Path) -> None:
    """node --test prints '# cancelled 0' inside its summary block; the counts must still come
    out (a failing JavaScript suite once read as 0 tests, which a reviewer took as green)."""
    from tests.conftest import make_settings

    project = tmp_path / "js"
    (project / "tests").mkdir(parents=True)
    (project / "package.json").write_text('{"name": "js", "scripts": {"test": "node --test"}}')
    (project / "tests" / "sum.test.js").write_text(
        "const test = require('node:test');\n"
        "const assert = require('node:assert');\n"
        "test('adds', () => assert.strictEqual(1 + 1, 2));\n"
        "test('fails on purpose', () => assert.strictEqual(1 + 1, 3));\n"
    )
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    result = call(build_registry(settings), "run_tests")
    assert (result.passed, result.failed) == (1, 1), result
    assert result.results_from == "runner-output" and result.exit_code == 1
