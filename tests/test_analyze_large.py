"""analyze_codebase on a generated 2,000-file repository stays within its measured budget.

Figures and the command that produced them: docs/tools.md.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from breakingwind.tools.registry import build_registry
from tests.conftest import make_settings

FILES = 2000
# Measured on the development machine (2 cores, shared): 0.17-0.23 s cold, 0.07-0.15 s warm.
# The budgets leave room for a loaded CI machine and still catch a re-parse of every file.
COLD_BUDGET_S = 5.0
WARM_BUDGET_S = 1.0

_TEMPLATES = {
    ".py": '"""Module {i}."""\nfrom pkg.m{j} import f{j}\n\n\nclass C{i}:\n'
    "    def method(self, x: int) -> int:\n        return f{j}(x)\n\n\n"
    "def f{i}(x: int) -> int:\n    return x + {i}\n",
    ".js": 'import {{ g{j} }} from "./m{j}.js";\n'
    "export class K{i} {{ run() {{ return g{j}(); }} }}\n"
    "export function g{i}() {{ return {i}; }}\n",
    ".go": "package pkg\n\ntype S{i} struct {{ A int }}\n\n"
    "func (s *S{i}) M() int {{ return {i} }}\n"
    "func F{i}() int {{ return {i} }}\n",
    ".rs": "pub struct R{i} {{ a: i32 }}\n"
    "impl R{i} {{ pub fn new() -> Self {{ R{i} {{ a: {i} }} }} }}\n"
    "pub fn f{i}() -> i32 {{ {i} }}\n",
}


def generate(root: Path, count: int) -> None:
    suffixes = list(_TEMPLATES)
    for i in range(count):
        suffix = suffixes[i % len(suffixes)]
        folder = root / "pkg" if suffix == ".py" else root / f"src{suffix.strip('.')}"
        folder.mkdir(parents=True, exist_ok=True)
        j = (i + len(suffixes)) % count
        j -= j % len(suffixes) - i % len(suffixes)  # import a module of the same language
        (folder / f"m{i}{suffix}").write_text(_TEMPLATES[suffix].format(i=i, j=j % count))
    (root / "pkg" / "__init__.py").write_text("")


def test_analyze_codebase_on_2000_files_is_within_budget(tmp_path: Path) -> None:
    project = tmp_path / "large"
    generate(project, FILES)
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    registry = build_registry(settings)

    started = time.perf_counter()
    cold = asyncio.run(registry.call("analyze_codebase", {"max_modules": 50}))
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = asyncio.run(registry.call("analyze_codebase", {"max_modules": 50}))
    warm_s = time.perf_counter() - started

    assert cold.files_total == FILES + 1 and cold.cache.parsed == FILES + 1
    assert warm.cache.reused == FILES + 1 and warm.cache.parsed == 0
    assert {s.language for s in cold.languages} == {"python", "javascript", "go", "rust"}
    assert len(cold.dependency_graph) > 900
    assert cold_s < COLD_BUDGET_S, f"cold analysis took {cold_s:.2f}s"
    assert warm_s < WARM_BUDGET_S, f"warm analysis took {warm_s:.2f}s"
