"""The Starlette app: built by `create_app(settings)`, live state on `app.state`, no globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from breakingwind.api import (
    anthropic_routes,
    dashboard,
    openai_routes,
    responses_routes,
    tools_routes,
    workflow_routes,
)
from breakingwind.api.audio import TRANSCRIPTIONS_PATH, create_transcription
from breakingwind.api.errors import EXCEPTION_HANDLERS
from breakingwind.api.health import health
from breakingwind.api.mcp_server import build_mcp_server, mcp_http_routes
from breakingwind.api.metrics import Metrics, metrics_endpoint
from breakingwind.api.middleware import (
    ApiKeyAuth,
    BodySizeLimit,
    BodyTimeout,
    HeaderLimits,
    LocalOnlyGuard,
    RequestMetrics,
)
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.media import MediaService
from breakingwind.projects import allowed_project
from breakingwind.runtime import open_runtime
from breakingwind.store import TaskStore
from breakingwind.tools.registry import ToolRegistries


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    media: MediaService | None = None,
    store: TaskStore | None = None,
) -> Starlette:
    """Build the app. The engine starts loading models in the lifespan (unless one is passed in,
    in which case its owner starts and closes it). Likewise a passed-in media service and task
    store (`serve` opens the store first, so that a locked or damaged one stops it). The tool
    registry and the MCP server are built here (cheap, nothing loaded) and the MCP session
    manager runs in the lifespan."""
    registries = ToolRegistries(settings)
    # The daemon's own tools (MCP, REST): their root passes the one project rule first.
    tools = registries.get(allowed_project(None, settings))
    mcp = build_mcp_server(tools)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Running tasks are stopped, not ended, on the way out: they resume at the next start.
        opened = open_runtime(
            settings, engine=engine, media=media, store=store, registries=registries, resume=True
        )
        async with opened as runtime, mcp.session_manager.run():
            app.state.runtime = runtime
            app.state.engine = runtime.engine
            app.state.media = runtime.media
            app.state.store = runtime.store
            app.state.pipeline = runtime.pipeline
            app.state.tools = tools
            yield

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *openai_routes.ROUTES,
        *responses_routes.ROUTES,
        *anthropic_routes.ROUTES,
        Route(TRANSCRIPTIONS_PATH, create_transcription, methods=["POST"]),
        *tools_routes.ROUTES,
        *workflow_routes.ROUTES,
        *mcp_http_routes(mcp, settings.server),
        *dashboard.ROUTES,
    ]
    server = settings.server
    metrics = Metrics(known_paths=frozenset(r.path for r in routes))
    middleware = [
        Middleware(RequestMetrics, metrics=metrics),
        Middleware(HeaderLimits, max_bytes=server.max_header_bytes, max_headers=server.max_headers),
        Middleware(
            LocalOnlyGuard, allowed_hosts=server.allowed_hosts, allowed_origins=server.cors_origins
        ),
    ]
    if server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=server.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Last-Event-ID",
                    "x-api-key",
                    "anthropic-version",
                    "anthropic-beta",
                ],
            )
        )
    middleware += [
        Middleware(ApiKeyAuth, api_key=server.api_key),
        Middleware(
            BodySizeLimit,
            max_bytes=server.max_body_bytes,
            # The upload route bounds its own body, by the media settings.
            self_limited=frozenset({TRANSCRIPTIONS_PATH}),
        ),
        Middleware(BodyTimeout, timeout_s=server.body_timeout_s),  # uploads included
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    metrics.watch_engine(lambda: getattr(app.state, "engine", None))
    return app
