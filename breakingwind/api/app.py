"""The Starlette app: built by `create_app(settings)`, live state on `app.state`, no globals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from breakingwind.api.audio import create_transcription, media_error
from breakingwind.api.health import health
from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.errors import MediaError
from breakingwind.media import MediaService


def create_app(
    settings: Settings, engine: Engine | None = None, media: MediaService | None = None
) -> Starlette:
    """Build the app. The engine starts loading models in the lifespan (unless one is passed in,
    in which case its owner starts and closes it). Likewise a passed-in media service."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = engine is None
        app.state.settings = settings
        app.state.engine = Engine(settings) if owned else engine
        if owned:
            settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
            app.state.engine.start()
        app.state.media = media or MediaService(settings)
        try:
            yield
        finally:
            if media is None:
                await app.state.media.close()
            if owned:
                await asyncio.to_thread(app.state.engine.close)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/audio/transcriptions", create_transcription, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={MediaError: media_error})
