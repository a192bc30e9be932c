"""A small real project (git repository with a test suite) and scripted agent answers."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from breakingwind.agents.tool_loop import gather_with_tools, offered_tools
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.engine.scripted import ScriptedModel
from breakingwind.tools.registry import build_registry

CALC = """def add(a, b):
    return a - b


def sub(a, b):
    return a - b
"""
TESTS = """from calc import add, sub


def test_add():
    assert add(2, 3) == 5


def test_sub():
    assert sub(5, 3) == 2
"""
TASK = "Fix add() in calc.py so that tests/test_calc.py passes."
FIX_DIFF = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
"""
# Right content, wrong line numbers: must still apply.
FIX_DIFF_WRONG_LINES = FIX_DIFF.replace("@@ -1,2 +1,2 @@", "@@ -40,2 +40,2 @@")
COMMENT_DIFF = "--- a/calc.py\n+++ b/calc.py\n@@ -4,2 +4,3 @@\n \n+# subtraction\n def sub(a, b):\n"
BAD_DIFF = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def add(x, y):
-    return x - y
+    return x + y
"""
ESCAPE_DIFF = """--- a/../outside.py
+++ b/../outside.py
@@ -0,0 +1 @@
+print("escaped")
"""
NO_TOOLS = "I have what I need."


def note(k: int) -> str:
    """A coder answer whose diff applies (a new file) but fixes nothing."""
    diff = f"--- /dev/null\n+++ b/notes_{k}.txt\n@@ -0,0 +1 @@\n+note {k}\n"
    return code(diff, f"notes_{k}.txt")


def make_project(root: Path) -> Path:
    """A git repository with calc.py (add() is wrong) and two tests (one fails)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "calc.py").write_text(CALC)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / "conftest.py").write_text("")
    (root / "README.md").write_text("# calc\n\nA tiny calculator.\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgSign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "calc"], cwd=root, check=True)
    return root


def plan(files: list[str] | None = None) -> str:
    return json.dumps(
        {
            "task_breakdown": [
                {
                    "id": "1",
                    "description": "Make add() return a + b",
                    "priority": "high",
                    "dependencies": [],
                    "estimated_complexity": "low",
                }
            ],
            "codebase_context": {
                "relevant_files": files or ["calc.py"],
                "architecture_notes": "one module",
                "test_requirements": ["tests/test_calc.py passes"],
            },
        }
    )


def code(diff: str, path: str = "calc.py") -> str:
    return json.dumps(
        {
            "files_modified": [{"path": path, "diff": diff, "reasoning": "fix"}],
            "tests_created": [],
            "status": "complete",
        }
    )


def review(status: str, *issues: str) -> str:
    return json.dumps(
        {
            "review_status": status,
            "issues_found": list(issues),
            "recommendations": [],
            "next_iteration": "",
        }
    )


def tool_call(name: str, **arguments: object) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def gather_one_call(
    settings: Settings, tool: str, question: str, *answers: str
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]], ScriptedModel]:
    """The planner's gathering turns with one call of `tool` allowed, the planner scripted with
    `answers`: the grown conversation, each call made (name, ok), and the scripted planner."""
    engine = Engine(settings)  # never started: the planner is scripted
    planner = ScriptedModel("planner")
    planner.enqueue(*answers)
    engine.replace_model("planner", planner)
    calls: list[tuple[str, bool]] = []

    async def record(name: str, arguments: dict[str, Any], ok: bool, summary: str) -> None:
        calls.append((name, ok))

    registry = build_registry(settings)
    messages = [{"role": "user", "content": question}]
    tools = offered_tools(registry, [tool], 1)
    conversation = asyncio.run(
        gather_with_tools(engine, "planner", messages, registry, tools, 1, record)
    )
    return conversation, calls, planner


def script_approved_fix(
    models: dict[str, ScriptedModel], preprocessed: str = "Fix add() in calc.py."
) -> None:
    """One workflow's answers: the fix (planner and coder without tool calls), approved at once."""
    models["preprocessor"].enqueue(preprocessed)
    models["planner"].enqueue(NO_TOOLS, plan())
    models["coder"].enqueue(NO_TOOLS, code(FIX_DIFF))
    models["reviewer"].enqueue(review("approved"))


# A first diff that applies but fixes nothing (rejected), then the fix, approved: two cycles.
TWO_CYCLES = {
    "preprocessor": [TASK],
    "planner": [NO_TOOLS, plan()],
    "coder": [NO_TOOLS, code(COMMENT_DIFF), NO_TOOLS, code(FIX_DIFF)],
    "reviewer": [review("changes_requested", "add() still subtracts"), review("approved")],
}
