"""A pure ASGI guard for the tool routes and /mcp: local origins only, and the API key if set.

A web page from another origin, or one reached through a DNS-rebound host name, must not drive
the tools: a foreign `Origin` or `Host` gets 403. Clients without an `Origin` (CLI tools, IDEs)
pass. When `server.api_key` is set, `Authorization: Bearer <key>` is required (401).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from breakingwind.config import ServerSettings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(settings: ServerSettings) -> list[str]:
    """Host names a request may carry: loopback, plus the configured host when it is specific."""
    hosts = list(LOOPBACK_HOSTS)
    if settings.host not in ("0.0.0.0", "::", *hosts):
        hosts.append(settings.host)
    return hosts


class LocalOriginOnly:
    """403 for a foreign Origin or Host, 401 for a missing/wrong API key; else pass through."""

    def __init__(self, app: ASGIApp, hosts: list[str], api_key: str | None = None) -> None:
        self.app = app
        self.hosts = hosts
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            problem = self._problem(headers)
            if problem is not None:
                status, kind, message = problem
                body = {"error": {"type": kind, "message": message}}
                await JSONResponse(body, status)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        origin = headers.get("origin")
        if origin is not None and _host_of(origin.split("://", 1)[-1]) not in self.hosts:
            return 403, "ForeignOrigin", f"origin {origin!r} is not a local origin"
        if _host_of(headers.get("host", "")) not in self.hosts:
            return 403, "ForeignHost", "the Host header is not this server's name"
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, "Unauthorized", "missing or wrong API key (Authorization: Bearer ...)"
        return None


def _host_of(authority: str) -> str:
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.split(":", 1)[0].split("/", 1)[0]
