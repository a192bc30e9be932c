"""REST tool routes: `GET /api/mcp/tools`, `POST /api/mcp/tool` {name, arguments}.

Thin: parse the body, call `registry.call()`, shape the answer. Tool errors reach the app's central
error handlers (`breakingwind.api.errors`), like every other route's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from breakingwind.api.sse import parse_json_body
from breakingwind.tools.registry import ToolRegistry


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="The tool to call.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")


async def list_tools(request: Request) -> JSONResponse:
    """Every tool with its input/output JSON schemas and annotations."""
    registry: ToolRegistry = request.app.state.tools
    return JSONResponse({"tools": [d.model_dump(mode="json") for d in registry.describe()]})


async def call_tool(request: Request) -> JSONResponse:
    """Run one tool; 200 with `result`, or an OpenAI-shaped error naming the reason."""
    registry: ToolRegistry = request.app.state.tools
    call = await parse_json_body(request, ToolCall)
    result = await registry.call(call.name, call.arguments)
    return JSONResponse({"name": call.name, "result": result.model_dump(mode="json")})


ROUTES = [
    Route("/api/mcp/tools", list_tools, methods=["GET"]),
    Route("/api/mcp/tool", call_tool, methods=["POST"]),
]
