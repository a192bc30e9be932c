"""The tool registry served over MCP (official `mcp` SDK v2): Streamable HTTP at /mcp, and stdio.

Each registry tool becomes an `MCPServer` tool whose signature is the registry's own (so the SDK
derives the same input schema) and whose return type is the tool's output model (so results
carry `structuredContent` and an output schema; the text copy is compact JSON, so a bounded
result fits a client's 1 MiB message limit). The call goes straight to `registry.call()`,
so the sandbox runs exactly once, in the registry. A `SandboxViolation` or `ToolError` is
re-raised as the SDK's `ToolError`, which the SDK turns into a result with `isError: true` and
our message (the SDK hides the text of any other exception).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from starlette.routing import BaseRoute, Route

from breakingwind import __version__
from breakingwind.config import ServerSettings
from breakingwind.errors import SandboxViolation, ToolError
from breakingwind.tools.registry import ToolRegistry, ToolSpec


def build_mcp_server(registry: ToolRegistry) -> MCPServer:
    """An MCP server with one tool per registry entry."""
    server = MCPServer(
        "breakingwind",
        version=__version__,
        instructions="Read-only codebase tools (and a sandboxed test runner) for one project.",
    )
    for spec in registry.specs():
        server.add_tool(
            _handler(registry, spec),
            name=spec.name,
            title=spec.title,
            description=spec.description,
            annotations=ToolAnnotations(
                title=spec.title,
                read_only_hint=spec.hints.read_only,
                destructive_hint=spec.hints.destructive,
                idempotent_hint=spec.hints.idempotent,
                open_world_hint=spec.hints.open_world,
            ),
            structured_output=True,
        )
    return server


def mcp_http_routes(server: MCPServer, settings: ServerSettings) -> list[BaseRoute]:
    """The /mcp route (call once: it creates the session manager, which must then run in the
    app's lifespan: `async with server.session_manager.run(): ...`).

    Sessions that clients never DELETE expire after `mcp_session_idle_s` and are capped at
    `mcp_max_sessions`, so a client that initializes in a loop cannot grow the daemon's memory."""
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=transport_security(settings),
        host=settings.host,
        session_idle_timeout=settings.mcp_session_idle_s,
        max_sessions=settings.mcp_max_sessions,
    )
    # Host, Origin and the API key are checked for every route by the app's middleware; the
    # SDK's own DNS-rebinding check stays on as a second line.
    return [Route(route.path, route.endpoint) for route in app.routes if isinstance(route, Route)]


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(settings: ServerSettings) -> list[str]:
    """Host names a request may carry: loopback, the configured ones, and a specific bind host."""
    hosts = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    if settings.host not in ("0.0.0.0", "::", *hosts):
        hosts.append(settings.host)
    return hosts


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """Host and Origin must be loopback (or the configured host): DNS-rebinding protection."""
    hosts = allowed_hosts(settings)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*hosts, *(f"{h}:*" for h in hosts)],
        allowed_origins=[
            f"{scheme}://{h}{port}"
            for scheme in ("http", "https")
            for h in hosts
            for port in ("", ":*")
        ]
        + list(settings.cors_origins),  # fmt: skip
    )


def _handler(
    registry: ToolRegistry, spec: ToolSpec
) -> Callable[..., Coroutine[Any, Any, CallToolResult]]:
    async def call(**arguments: Any) -> CallToolResult:
        try:
            result = await registry.call(spec.name, arguments)
        except SandboxViolation as exc:
            raise MCPToolError(f"SandboxViolation[{exc.rule}]: {exc}") from exc
        except ToolError as exc:
            raise MCPToolError(f"{type(exc).__name__}: {exc}") from exc
        # Compact JSON text: the SDK's default indents it, which can double a result that the
        # message also carries as structuredContent (clients refuse messages over 1 MiB).
        return CallToolResult(
            content=[TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
        )

    call.__name__ = spec.name
    call.__doc__ = spec.description
    call.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in spec.parameters],
        return_annotation=spec.output_model,
    )
    return call
