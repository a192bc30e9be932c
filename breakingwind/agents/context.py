"""Fitting project material into a model's context: a compact repo map and file excerpts."""

from __future__ import annotations

from breakingwind.errors import SandboxViolation, ToolError
from breakingwind.tools.analyze_codebase import AnalyzeCodebaseResult
from breakingwind.tools.registry import ToolRegistry

CHARS_PER_TOKEN = 3  # conservative for code; budgets below are in characters


def char_budget(n_ctx: int, share: float) -> int:
    """Characters of material that fit in `share` of an `n_ctx`-token context."""
    return max(400, int(n_ctx * share) * CHARS_PER_TOKEN)


async def repo_map(registry: ToolRegistry, budget: int) -> str:
    """The project as a short outline: languages, frameworks, tests, modules and their symbols."""
    result = await registry.call("analyze_codebase", {"max_modules": 200})
    assert isinstance(result, AnalyzeCodebaseResult)
    lines = [
        f"{result.files_total} files; languages: "
        + ", ".join(f"{lang.language} ({lang.files})" for lang in result.languages[:6]),
    ]
    if result.frameworks:
        lines.append("frameworks: " + ", ".join(f.name for f in result.frameworks[:8]))
    if result.test_locations:
        lines.append("tests: " + ", ".join(result.test_locations[:6]))
    for module in result.modules:
        symbols = ", ".join(s.signature or s.name for s in module.symbols if not s.parent)
        lines.append(f"- {module.path}: {symbols}"[:240] if symbols else f"- {module.path}")
    return _cut("\n".join(lines), budget)


async def file_excerpts(registry: ToolRegistry, paths: list[str], budget: int) -> str:
    """The text of `paths` (those that exist and may be read), numbered, within `budget`."""
    parts: list[str] = []
    left = budget
    for path in dict.fromkeys(paths):
        if left <= 200:
            break
        try:
            result = await registry.call("read_file", {"path": path})
        except (SandboxViolation, ToolError):
            continue
        text = getattr(result, "content", "")
        block = f"--- {path}\n{text}"
        parts.append(_cut(block, left))
        left -= len(parts[-1])
    return "\n\n".join(parts)


def _cut(text: str, budget: int) -> str:
    return text if len(text) <= budget else text[: budget - 20] + "\n…(truncated)"
