"""A real project made on disk for the tool tests: a git history, Python and JS sources, docs,
secrets files, and a pytest suite with known outcomes (3 passed, 1 failed, 1 error, 1 skipped)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from breakingwind.config import Settings
from tests.conftest import make_settings

SUITE_COUNTS = {"passed": 3, "failed": 1, "errors": 1, "skipped": 1}

FILES: dict[str, str] = {
    "README.md": "# Demo\n\nA demo project.\n\n## Usage\n\nCall `frobnicate` to spin the wheel.\n",
    "docs/guide.rst": "Guide\n=====\n\nThe quantum flux capacitor needs calibration.\n",
    "pyproject.toml": '[project]\nname = "demo"\ndependencies = ["pydantic"]\n\n'
    '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
    ".gitignore": "build/\n*.log\n",
    "build/generated.py": "IGNORED = True\n",
    "debug.log": "ignored log\n",
    ".env": "API_TOKEN=hunter2\n",
    ".env.production": "API_TOKEN=prod\n",
    "keys/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    "pkg/__init__.py": '"""The demo package."""\n',
    "pkg/core.py": '''"""Core logic of the demo."""

import os


class Engine:
    """Spins the wheel."""

    def run(self, speed: int = 1) -> int:
        """Run the engine at a speed."""
        return helper(speed)


def helper(value: int) -> int:
    """Compute the frobnication factor."""
    # The factor doubles because the wheel has two spokes.
    return value * 2
''',
    "pkg/util.py": """from pkg.core import helper
from .core import Engine


def twice() -> int:
    return helper(2) + Engine().run()
""",
    "web/math.js": "// Adds two numbers for the helper widget.\nexport function add(a, b) {\n"
    "  return a + b;\n}\n",
    "web/app.js": 'import { add } from "./math.js";\n\nexport class Widget {\n'
    "  render() { return add(1, 2); }\n}\n\nexport const helper = (x) => add(x, x);\n",
    "tests/__init__.py": "",
    "tests/test_core.py": """import pytest

from pkg.core import Engine, helper


def test_helper_doubles():
    assert helper(2) == 4


def test_engine_runs():
    assert Engine().run(3) == 6


def test_twice():
    from pkg.util import twice

    assert twice() == 6


def test_fails_on_purpose():
    assert helper(1) == 3, "one doubled is not three"


@pytest.fixture
def broken():
    raise RuntimeError("fixture is broken")


def test_errors_on_purpose(broken):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
""",
    "cases/hang/test_hang.py": "import time\n\n\ndef test_hangs():\n    time.sleep(120)\n",
}


def git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def make_project(root: Path) -> Path:
    """Write the files, commit them in two commits, then leave staged and unstaged changes."""
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "escape").mkdir()
    (root / "escape" / "test_escape.py").write_text(_ESCAPE_TEST.format(project=str(root)))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    git(root, "tag", "v1")
    core = root / "pkg" / "core.py"
    core.write_text(core.read_text().replace("two spokes", "two shiny spokes"))
    git(root, "commit", "-q", "-am", "second")
    (root / "README.md").write_text(FILES["README.md"] + "\nStaged line.\n")
    git(root, "add", "README.md")
    (root / "pkg" / "util.py").write_text(FILES["pkg/util.py"] + "\n# unstaged change\n")
    (root / "notes.txt").write_text("untracked\n")
    return root


def project_settings(tmp_path: Path, extra: str = "") -> Settings:
    """Settings whose project root is a fresh fixture project under `tmp_path/project`."""
    project = tmp_path / "project"
    project.mkdir()
    make_project(project)
    return make_settings(tmp_path, extra, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})


# A test that tries to change the project from its workspace (cases/escape): a relative write
# that climbs out, an absolute write, and a delete. None of them may reach the project.
_ESCAPE_TEST = """import os
from pathlib import Path

PROJECT = Path({project!r})


def _attempt(action):
    try:
        action()
    except OSError:
        pass


def test_writes_outside_the_workspace():
    _attempt(lambda: Path("../README.md").write_text("overwritten relative"))
    _attempt(lambda: (PROJECT / "README.md").write_text("overwritten absolute"))
    _attempt(lambda: (PROJECT / "pkg" / "core.py").unlink())
    _attempt(lambda: (PROJECT / "planted.txt").write_text("planted"))
"""
