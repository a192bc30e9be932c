"""The coder's constrained edits on the real embedded model: whatever it writes applies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from breakingwind.agents.coder import write_code
from breakingwind.diffs import apply_file_changes
from breakingwind.engine import Engine
from breakingwind.tools.registry import ToolRegistry, build_registry
from tests.conftest import make_settings

OPS = """def total(values):
    return sum(values)


def mean(values):
    return sum(values) / (len(values) + 1)
"""
TESTS = """from calc.ops import mean


def test_mean():
    assert mean([1, 2, 3]) == 2
"""


def project(root: Path) -> Path:
    (root / "calc").mkdir(parents=True)
    (root / "calc" / "__init__.py").write_text("")
    (root / "calc" / "ops.py").write_text(OPS)
    (root / "tests").mkdir()
    (root / "tests" / "test_ops.py").write_text(TESTS)
    (root / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    return root


def registry_for(tmp_path: Path) -> ToolRegistry:
    root = project(tmp_path / "project")
    settings = make_settings(tmp_path)
    settings = settings.model_copy(
        update={"project": settings.project.model_copy(update={"root": root})}
    )
    return build_registry(settings)


async def no_tool_event(*_: Any) -> None:
    return None


def code(engine: Engine, registry: ToolRegistry, task: str, feedback: str | None = None):
    return asyncio.run(
        write_code(
            engine,
            registry,
            task,
            '{"task_breakdown": [{"id": "1", "description": "fix mean"}]}',
            ["calc/ops.py"],
            feedback,
            1,
            0,
            no_tool_event,
        )
    )


def test_every_edit_of_the_embedded_model_applies(engine: Engine, tmp_path: Path) -> None:
    registry = registry_for(tmp_path)
    tasks = [
        "The mean() function in calc/ops.py gives wrong results. Fix it.",
        "Add a function median(values) to calc/ops.py and a test for it.",
        "Rename total to sum_all in calc/ops.py.",
    ]
    edits = 0
    for task in tasks:
        output = code(engine, registry, task)
        edits += output.edits
        changes = [(change.path, change.diff) for change in output.files_modified]
        applied = apply_file_changes(registry.context.sandbox, changes)
        assert sorted(applied.files) == sorted(c.path for c in output.files_modified)
        assert applied.fuzzy_hunks == 0
    assert edits >= len(tasks)


def test_a_file_changed_after_planning_is_edited_as_it_is_now(
    engine: Engine, tmp_path: Path
) -> None:
    registry = registry_for(tmp_path)
    ops = registry.context.sandbox.root / "calc" / "ops.py"
    ops.write_text("# changed by the developer\n" + OPS.replace("total", "grand_total"))
    output = code(engine, registry, "The mean() function in calc/ops.py is wrong. Fix it.")
    changes = [(change.path, change.diff) for change in output.files_modified]
    apply_file_changes(registry.context.sandbox, changes)
    for change in output.files_modified:
        if change.path == "calc/ops.py":
            assert "grand_total" in ops.read_text() or "-def grand_total" in change.diff
