"""The small git project the load run's workflows and MCP tool calls work on."""

from __future__ import annotations

import subprocess
from pathlib import Path

from breakingwind.gitcmd import HARDENING

FILES = {
    "README.md": "# calc\n\nA tiny calculator. See docs/usage.md.\n",
    "docs/usage.md": "# Usage\n\nCall `add(a, b)` to add two numbers and `sub(a, b)` to"
    " subtract them.\n",
    "calc.py": '"""A tiny calculator."""\n\n\ndef add(a, b):\n    """Add two numbers."""\n'
    "    return a - b\n\n\ndef sub(a, b):\n    return a - b\n",
    "tests/test_calc.py": "from calc import add, sub\n\n\ndef test_add():\n"
    "    assert add(2, 3) == 5\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n",
    "conftest.py": "",
}
TASK = "Fix add() in calc.py so that tests/test_calc.py passes."
# Tool calls that succeed on this project, by tool name.
TOOL_CALLS: dict[str, dict[str, object]] = {
    "read_file": {"path": "calc.py", "start_line": 1, "end_line": 6},
    "analyze_codebase": {"max_modules": 10},
    "search_docs": {"query": "subtract numbers"},
    "find_references": {"symbol": "add"},
    "git_diff": {"base": "v1", "target": "HEAD"},
}


def make_load_project(root: Path) -> Path:
    """Write the project and commit it twice (tag `v1` on the first commit)."""
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "calc")
    _git(root, "tag", "v1")
    (root / "calc.py").write_text(FILES["calc.py"] + "\n\ndef mul(a, b):\n    return a * b\n")
    _git(root, "commit", "-q", "-am", "mul")
    return root


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *HARDENING, *args], cwd=root, check=True, capture_output=True)
