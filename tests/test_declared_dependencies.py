"""Every third-party module the product imports comes from a dependency pyproject.toml declares
for the product (not only for the tests, and not only through another package's dependencies)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "breakingwind"


def _imported_top_level_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}


def test_the_product_imports_only_declared_dependencies() -> None:
    declared = _declared()
    providers = metadata.packages_distributions()
    undeclared: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for module in _imported_top_level_modules(path) - set(sys.stdlib_module_names):
            if module == "breakingwind":
                continue
            dists = {canonicalize_name(dist) for dist in providers.get(module, [])}
            if not dists & declared:
                where = str(path.relative_to(ROOT))
                undeclared.setdefault(f"{module} (from {sorted(dists) or 'nothing'})", set()).add(
                    where
                )
    assert undeclared == {}


def test_the_product_uses_one_http_client_library() -> None:
    users = sorted(
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "httpx" in _imported_top_level_modules(path)
    )
    assert users == []
