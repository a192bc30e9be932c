"""REST tool routes: `GET /api/mcp/tools`, `POST /api/mcp/tool` {name, arguments}.

Thin: parse the body, call `registry.call()`, shape the answer. Tool errors become JSON error
bodies by class, through `TOOL_EXCEPTION_HANDLERS` (looked up along the MRO by Starlette).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from breakingwind.api.local_guard import LocalOriginOnly, allowed_hosts
from breakingwind.config import ServerSettings
from breakingwind.errors import (
    InvalidToolArguments,
    SandboxViolation,
    ToolError,
    ToolFailed,
    ToolInputRejected,
    ToolOutputTooLarge,
    UnknownTool,
)
from breakingwind.tools.registry import ToolRegistry

_MAX_BODY_BYTES = 1_000_000
_STATUS: dict[type[Exception], int] = {
    SandboxViolation: 403,
    UnknownTool: 404,
    InvalidToolArguments: 422,
    ToolInputRejected: 422,
    ToolOutputTooLarge: 413,
    ToolFailed: 500,
    ToolError: 400,
}


class ToolCall(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="The tool to call.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")


async def list_tools(request: Request) -> JSONResponse:
    """Every tool with its input/output JSON schemas and annotations."""
    registry: ToolRegistry = request.app.state.tools
    return JSONResponse({"tools": [d.model_dump(mode="json") for d in registry.describe()]})


async def call_tool(request: Request) -> JSONResponse:
    """Run one tool; 200 with `result`, or an error body naming the error class."""
    registry: ToolRegistry = request.app.state.tools
    body = await request.body()
    if len(body) > _MAX_BODY_BYTES:
        return _error(413, "RequestTooLarge", f"body is over {_MAX_BODY_BYTES} bytes")
    try:
        call = ToolCall.model_validate(json.loads(body or b"{}"))
    except (ValueError, ValidationError) as exc:
        return _error(422, "InvalidRequest", _first_problem(exc))
    result = await registry.call(call.name, call.arguments)
    return JSONResponse({"name": call.name, "result": result.model_dump(mode="json")})


async def _tool_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((_STATUS[c] for c in type(exc).__mro__ if c in _STATUS), 400)
    extra = {"rule": exc.rule} if isinstance(exc, SandboxViolation) else {}
    return _error(status, type(exc).__name__, str(exc), **extra)


TOOL_EXCEPTION_HANDLERS = {SandboxViolation: _tool_error, ToolError: _tool_error}


def tools_mount(settings: ServerSettings) -> Mount:
    """`/api/mcp/tools` and `/api/mcp/tool`, behind the local-origin guard."""
    return Mount(
        "/api/mcp",
        routes=[
            Route("/tools", list_tools, methods=["GET"]),
            Route("/tool", call_tool, methods=["POST"]),
        ],
        middleware=[
            Middleware(LocalOriginOnly, hosts=allowed_hosts(settings), api_key=settings.api_key)
        ],
    )


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
    return f"body is not JSON: {exc}"


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status)
