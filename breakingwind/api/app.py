"""The Starlette app: built by `create_app(settings)`, live state on `app.state`, no globals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from breakingwind.api.health import health
from breakingwind.api.mcp_server import build_mcp_server, mcp_http_routes
from breakingwind.api.tools_routes import TOOL_EXCEPTION_HANDLERS, tools_mount
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.tools.registry import build_registry


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """Build the app. The engine starts loading models in the lifespan (unless one is passed in,
    in which case its owner starts and closes it). The tool registry and the MCP server are
    built here (cheap, nothing loaded) and the MCP session manager runs in the lifespan."""
    tools = build_registry(settings)
    mcp = build_mcp_server(tools)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = engine is None
        app.state.settings = settings
        app.state.engine = Engine(settings) if owned else engine
        app.state.tools = tools
        if owned:
            settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
            app.state.engine.start()
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            if owned:
                await asyncio.to_thread(app.state.engine.close)

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            tools_mount(settings.server),
            *mcp_http_routes(mcp, settings.server),
        ],
        exception_handlers=TOOL_EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
