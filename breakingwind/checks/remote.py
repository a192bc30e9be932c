"""Agents served by another OpenAI-compatible server: reachable, model listed, a round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from breakingwind.checks.context import Context, Result, Skipped, fail, ok
from breakingwind.engine.remote import RemoteModel, check_remote


def check_remote_backends(ctx: Context) -> Iterator[Result]:
    remote = {
        agent: settings
        for agent, settings in ctx.settings.agents().items()
        if settings.backend == "openai"
    }
    if not remote:
        raise Skipped("every agent runs in-process")
    for agent, settings in remote.items():
        passed, detail = asyncio.run(
            check_remote(RemoteModel(agent, settings, ctx.settings.engine.max_queue))
        )
        yield (
            ok(f"{agent}: {detail}")
            if passed
            else fail(
                f"{agent}: {detail}",
                f'start the server at {settings.base_url}, or set [{agent}] backend = "local"',
            )
        )
