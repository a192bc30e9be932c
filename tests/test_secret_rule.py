"""One secret rule for every tool's output: `.git` internals (any case) and secrets files never
come back, through read_file, listings, search, references or git_diff between commits."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from breakingwind.errors import SandboxViolation
from breakingwind.tools.registry import ToolRegistry, build_registry
from tests.conftest import make_settings

TOKEN = "ghp_SECRETTOKEN0123456789"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgSign=false"]
SECRET_FILES = {
    ".env.production": f"API_KEY={TOKEN}\n",
    "keys/id_rsa": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{TOKEN}\n",
    "config/.ENV": f"DB_PASSWORD={TOKEN}\n",
    "certs/server.PEM": f"{TOKEN}\n",
    "deploy/.Env.local": f"{TOKEN}\n",
}


@pytest.fixture
def registry(tmp_path: Path) -> ToolRegistry:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text("def main():\n    return 1\n")
    (project / "README.md").write_text("# app\n\nRun main().\n")
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True)
    remote = f"https://user:{TOKEN}@github.com/acme/app.git"
    subprocess.run([*GIT, "remote", "add", "origin", remote], cwd=project, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "one"], cwd=project, check=True)
    for name, text in SECRET_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "app.py").write_text("def main():\n    return 2\n")
    subprocess.run([*GIT, "add", "-A", "-f"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "two"], cwd=project, check=True)
    (project / "link-to-config").symlink_to(project / ".git" / "config")
    (project / ".env.production").write_text(f"API_KEY={TOKEN}-edited\n")  # working-tree change
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    return build_registry(settings)


GIT_FORMS = [
    ".git/config", ".GIT/config", ".Git/config", "./.git//config", "app.py/../.git/config",
    ".git/HEAD", ".git", ".git/", ".git/objects", ".git/logs/HEAD", "link-to-config",
    "keys/../.git/config", ".gIt/CONFIG",
]  # fmt: skip


def test_git_internals_are_refused_in_any_case(registry: ToolRegistry) -> None:
    root = registry.context.sandbox.root
    forms = [*GIT_FORMS, str(root / ".git" / "config"), str(root / ".GIT" / "config")]
    for form in forms:
        with pytest.raises(SandboxViolation) as caught:
            asyncio.run(registry.call("read_file", {"path": form}))
        assert caught.value.rule in ("git_internals", "symlink_escape", "secret_file"), form
        assert TOKEN not in str(caught.value)
    with pytest.raises(SandboxViolation) as caught:
        asyncio.run(registry.call("read_file", {"path": ".GIT/config"}))
    assert caught.value.rule == "git_internals"


def test_secret_files_are_refused_whatever_their_case(registry: ToolRegistry) -> None:
    for name in [*SECRET_FILES, ".ENV.PRODUCTION", "KEYS/ID_RSA", "config/.env"]:
        with pytest.raises(SandboxViolation) as caught:
            asyncio.run(registry.call("read_file", {"path": name}))
        assert caught.value.rule == "secret_file", name


def test_git_diff_between_commits_leaves_secrets_out(registry: ToolRegistry) -> None:
    for arguments in (
        {"base": "HEAD~1", "target": "HEAD"},
        {"base": "HEAD~1"},
        {},
        {"base": "HEAD~1", "target": "HEAD", "paths": ["keys", "app.py"]},
    ):
        result = asyncio.run(registry.call("git_diff", arguments))
        text = result.model_dump_json()
        assert TOKEN not in text, arguments
        assert not any(name.lower() in text.lower() for name in SECRET_FILES), arguments
        assert result.secrets_omitted >= 1, arguments
    both = asyncio.run(registry.call("git_diff", {"base": "HEAD~1", "target": "HEAD"}))
    assert [f.path for f in both.files] == ["app.py"] and "return 2" in both.diff
    assert both.secrets_omitted == len(SECRET_FILES)


def test_no_read_only_tool_returns_a_secret(registry: ToolRegistry) -> None:
    calls = [
        ("analyze_codebase", {}),
        ("search_docs", {"query": "API_KEY DB_PASSWORD PRIVATE KEY ghp"}),
        ("search_docs", {"query": TOKEN}),
        ("find_references", {"symbol": "API_KEY"}),
        ("read_file", {"path": "app.py"}),
    ]
    for name, arguments in calls:
        try:
            result = asyncio.run(registry.call(name, arguments)).model_dump(mode="json")
            result.pop("query", None)  # the question itself, echoed
            output = json.dumps(result)
        except Exception as exc:  # a refusal is fine; what matters is what comes back
            output = str(exc)
        assert TOKEN not in output, name
        assert "github.com/acme" not in output, name
