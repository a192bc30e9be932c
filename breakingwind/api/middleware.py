"""Pure ASGI middleware (never buffers a stream): request head limits, local-only guard, API
key, body size limit, body timeout, request metrics."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakingwind.api.errors import error_response
from breakingwind.api.metrics import Metrics
from breakingwind.errors import (
    Forbidden,
    HeadersTooLarge,
    MisdirectedRequest,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    Unauthorized,
)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _refuse(exc: RequestError, scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(exc, scope.get("path", ""))(scope, receive, send)


class HeaderLimits:
    """431 for a request with more than `max_headers` headers or a head over `max_bytes`.

    uvicorn's h11 refuses a head only while it is still incomplete past its buffer limit; one
    that arrives whole in a single read (up to 256 KiB) gets through at any size. This makes the
    limit the same however the bytes arrive.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_headers: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
        size += sum(len(name) + len(value) + 4 for name, value in headers)  # ": " and CRLF
        if len(headers) > self.max_headers or size > self.max_bytes:
            refused = HeadersTooLarge(
                f"the request head has {len(headers)} headers and {size} bytes; the limits are"
                f" {self.max_headers} headers and {self.max_bytes} bytes"
            )
            await _refuse(refused, scope, receive, send)
            return
        await self.app(scope, receive, send)


class LocalOnlyGuard:
    """Refuse requests whose Host or Origin is not this machine (DNS rebinding, cross-site).

    A web page the developer visits can make the browser send requests to 127.0.0.1; its
    `Origin` (or, after DNS rebinding, its `Host`) gives it away. `Origin: null` is foreign.
    """

    def __init__(
        self, app: ASGIApp, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.hosts = LOCAL_HOSTS | {h.lower() for h in allowed_hosts}
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _host_name(_header(scope, b"host") or "")
        if host not in self.hosts:
            await _refuse(
                MisdirectedRequest(f"host {host!r} is not served here"), scope, receive, send
            )
            return
        origin = _header(scope, b"origin")
        if origin is not None and not self._origin_allowed(origin):
            await _refuse(
                Forbidden(f"cross-origin request from {origin!r} refused"), scope, receive, send
            )
            return
        await self.app(scope, receive, send)

    def _origin_allowed(self, origin: str) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and (parts.hostname or "") in LOCAL_HOSTS


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class ApiKeyAuth:
    """When an API key is configured, every route except /health and the dashboard's static
    files (no data in them; the page itself asks for the key) needs it, as `Bearer <key>` or in
    an `x-api-key` header (Anthropic's clients send that)."""

    OPEN_PATHS = frozenset({"/health", "/"})
    OPEN_PREFIXES = ("/web/",)

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] != "http" or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":  # CORS preflights carry no credentials
            await self.app(scope, receive, send)
            return
        if not self._authorised(scope):
            await _refuse(Unauthorized("missing or invalid API key"), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        assert self.key is not None
        scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key):
            return True
        api_key = _header(scope, b"x-api-key")
        return api_key is not None and hmac.compare_digest(api_key.strip().encode(), self.key)

    def _open(self, path: str) -> bool:
        return path in self.OPEN_PATHS or path.startswith(self.OPEN_PREFIXES)


class BodySizeLimit:
    """413 for bodies over the limit: by Content-Length up front, or while the body streams in."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, self_limited: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.self_limited = self_limited  # routes that bound their own bodies (uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.self_limited:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _header(scope, b"content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > limit
        ):
            await _refuse(_too_large(limit), scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limit} bytes")


class BodyTimeout:
    """408 (and the connection closed) when a request body has not arrived whole `timeout_s`
    after its head: a client dribbling a byte a second would otherwise hold the request open.

    Only reads of the body are timed; once it is complete, `receive` waits for a disconnect (as
    streaming responses do) without a deadline.
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.timeout_s:g} seconds"
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class RequestMetrics:
    """Counts requests by route and status, and times them (time to the response headers)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.observe_request(scope["path"], status, time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, send_with_status)
