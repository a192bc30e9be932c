"""The coder's constrained edits on the real embedded model: whatever it writes applies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from breakingwind.agents.coder import write_code
from breakingwind.diffs import apply_file_changes
from breakingwind.engine import Engine, GenerationResult
from breakingwind.engine.budget import token_budget
from breakingwind.tasks import CoderOutput
from breakingwind.tools.registry import ToolRegistry, build_registry
from tests.conftest import make_settings

TEST_TOKENS = 300
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


def code(engine: Engine, registry: ToolRegistry, task: str, max_tool_calls: int = 0) -> CoderOutput:
    """One coder iteration inside a stage's token budget, as the pipeline runs it (a small
    budget keeps the test short: the edits made before it runs out are kept)."""

    async def stage() -> CoderOutput:
        with token_budget(TEST_TOKENS):
            return await write_code(
                engine,
                registry,
                task,
                '{"task_breakdown": [{"id": "1", "description": "fix mean"}]}',
                ["calc/ops.py"],
                None,
                1,
                max_tool_calls,
                no_tool_event,
            )

    return asyncio.run(stage())


def test_every_edit_of_the_embedded_model_applies(engine: Engine, tmp_path: Path) -> None:
    registry = registry_for(tmp_path)
    output = code(engine, registry, "Add a function median(values) to calc/ops.py.")
    changes = [(change.path, change.diff) for change in output.files_modified]
    applied = apply_file_changes(registry.context.sandbox, changes)
    assert sorted(applied.files) == sorted(c.path for c in output.files_modified)
    assert applied.fuzzy_hunks == 0  # each hunk applied exactly where the edit put it
    assert output.edits >= 1


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


def test_the_edit_steps_reuse_the_tool_turns_prompt(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The edit steps render the conversation as the tool turn did (tools shown, not callable),
    # so each reads only its own question: the prefix is in the cache.
    results: list[GenerationResult] = []
    complete = engine.complete

    async def recorded(*args: Any, **kwargs: Any) -> GenerationResult:
        result = await complete(*args, **kwargs)
        results.append(result)
        return result

    monkeypatch.setattr(engine, "complete", recorded)
    output = code(engine, registry_for(tmp_path), "Fix mean() in calc/ops.py.", max_tool_calls=1)
    assert output.edits >= 1 and len(results) >= 4  # a tool turn, then target, range, replacement
    gathered = results[0].usage.prompt_tokens
    for step in results[1:]:
        assert step.usage.cached_tokens >= gathered - 8, [r.usage for r in results]
