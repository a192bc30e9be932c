"""GET /health: is the daemon up, and what state is each agent's model in."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse

from breakingwind import __version__
from breakingwind.engine import Engine


async def health(request: Request) -> JSONResponse:
    """200 when every model is ready, 503 while any is still loading; `degraded` when one failed,
    or a remote agent's last request failed (`last_error` says how; the others keep serving)."""
    engine: Engine = request.app.state.engine
    agents = {}
    for agent, status in engine.status().items():
        agents[agent] = {
            "state": status.state,
            "backend": status.backend,
            "base_url": status.base_url,
            "model_file": status.model_file,
            "embedded_default": status.fallback,
            "error": status.error,
            "degraded": status.last_error is not None,
            "last_error": status.last_error,
            "queue_depth": status.queue_depth,
            "busy": status.busy,
            "load": asdict(status.report) if status.report else None,
        }
    states = {agent["state"] for agent in agents.values()}
    if "loading" in states:
        overall, code = "loading", 503
    elif "failed" in states or any(agent["degraded"] for agent in agents.values()):
        overall, code = "degraded", 200
    else:
        overall, code = "ok", 200
    return JSONResponse({"status": overall, "version": __version__, "agents": agents}, code)
