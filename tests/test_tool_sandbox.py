"""The sandbox: every rule, attacked through every tool of the real registry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from breakingwind.errors import SandboxViolation, ToolInputRejected
from breakingwind.tools.registry import ToolRegistry, build_registry
from breakingwind.tools.sandbox import SANDBOX_RULES
from tests.fixture_project import project_settings
from tests.sandbox_attacks import PATH_ARGUMENTS, attack_arguments, plant_attacks


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[ToolRegistry, dict[str, list[str]]]:
    settings = project_settings(tmp_path_factory.mktemp("sandbox"))
    attacks = plant_attacks(settings.project.root)
    return build_registry(settings), attacks


def test_every_rule_has_an_attack(attacked: tuple[ToolRegistry, dict[str, list[str]]]) -> None:
    assert set(attacked[1]) == set(SANDBOX_RULES)


@pytest.mark.parametrize("tool", sorted(PATH_ARGUMENTS))
@pytest.mark.parametrize("rule", SANDBOX_RULES)
def test_rule_is_enforced_for_every_tool(
    attacked: tuple[ToolRegistry, dict[str, list[str]]], tool: str, rule: str
) -> None:
    registry, attacks = attacked
    for path in attacks[rule]:
        with pytest.raises(SandboxViolation) as caught:
            asyncio.run(registry.call(tool, attack_arguments(tool, path)))
        assert caught.value.rule == rule, (path, str(caught.value))
        assert rule in str(caught.value)


def test_paths_inside_the_project_pass(
    attacked: tuple[ToolRegistry, dict[str, list[str]]],
) -> None:
    sandbox = attacked[0].context.sandbox
    root = sandbox.root
    assert sandbox.resolve_inside_project("pkg/../pkg/core.py") == root / "pkg" / "core.py"
    assert sandbox.resolve_inside_project(str(root / "README.md")) == root / "README.md"
    assert sandbox.resolve_inside_project(".") == root


def test_missing_file_is_rejected_not_a_violation(
    attacked: tuple[ToolRegistry, dict[str, list[str]]],
) -> None:
    with pytest.raises(ToolInputRejected, match="does not exist"):
        asyncio.run(attacked[0].call("read_file", {"path": "nope.py"}))


def test_secrets_are_readable_when_allowed(tmp_path: Path) -> None:
    settings = project_settings(tmp_path, "[tools]\nallow_secrets = true\n")
    result = asyncio.run(build_registry(settings).call("read_file", {"path": ".env"}))
    assert "hunter2" in result.content


def test_secrets_patterns_are_configurable(tmp_path: Path) -> None:
    settings = project_settings(tmp_path, '[tools]\nsecret_patterns = ["*.md"]\n')
    registry = build_registry(settings)
    with pytest.raises(SandboxViolation) as caught:
        asyncio.run(registry.call("read_file", {"path": "README.md"}))
    assert caught.value.rule == "secret_file"
    assert "hunter2" in asyncio.run(registry.call("read_file", {"path": ".env"})).content


def test_project_reached_through_a_symlink_works(tmp_path: Path) -> None:
    settings = project_settings(tmp_path)
    alias = tmp_path / "alias"
    alias.symlink_to(settings.project.root, target_is_directory=True)
    project = settings.project.model_copy(update={"root": alias})
    registry = build_registry(settings.model_copy(update={"project": project}))
    result = asyncio.run(registry.call("read_file", {"path": str(alias / "README.md")}))
    assert result.path == "README.md"
