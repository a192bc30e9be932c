"""The project the tools work on: the tool registry builds around `project.root`."""

from __future__ import annotations

from collections.abc import Iterator

from breakingwind.checks.context import Context, Result, fail, ok
from breakingwind.errors import BreakingWindError

SET_ROOT = "set [project] root in config.toml (or BREAKINGWIND_PROJECT_ROOT) to your project"


def check_tools(ctx: Context) -> Iterator[Result]:
    """The registry the daemon, MCP and the agents share builds (the daemon will not start
    without it)."""
    try:
        names = [spec.name for spec in ctx.tools.specs()]
    except BreakingWindError as exc:
        yield fail(f"the codebase tools cannot start: {exc}", SET_ROOT)
        return
    yield ok(f"{len(names)} tools over {ctx.settings.project.root}: {', '.join(names)}")
