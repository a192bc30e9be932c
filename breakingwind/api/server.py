"""The HTTP server: uvicorn's h11 protocol with a deadline on request heads, and its config.

What uvicorn 0.54's h11 protocol does on its own (read from its source, and tested in
tests/test_slow_clients.py): a request head still incomplete past `h11_max_incomplete_event_size`
bytes is refused with a 400 and the connection closed, but one that arrives whole in a single read
(up to 256 KiB) is accepted at any size; the keep-alive timer is armed only after a response and
cancelled by the next byte, so a connection that sends nothing, or half a head, is never closed;
nothing bounds how long a body may take. `HeaderLimits` (431) makes the first exact,
`HeadDeadlineH11Protocol` closes the second, `BodyTimeout` (408) bounds the third.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import ClassVar

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from breakingwind.config import ServerSettings


class HeadDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request head
    `head_timeout_s` after it opened or after its last response."""

    head_timeout_s: ClassVar[float] = 20.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._cycle_seen: RequestResponseCycle | None = None
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._head_arrived():  # (a pipelined request may already be in)
            self._await_head()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._stop_head_timer()  # the connection is the websocket protocol's from here
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(
            self.head_timeout_s, self.timeout_keep_alive_handler
        )

    def _head_arrived(self) -> bool:
        # uvicorn starts a new request cycle for each complete head.
        if self.cycle is self._cycle_seen:
            return False
        self._cycle_seen = self.cycle
        self._stop_head_timer()
        return True

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning `serve` prints when it would listen beyond this machine with no API key:
    anyone on the network could then run models and read the project through the tools."""
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or api_key:
        return None
    return (
        f"WARNING: listening on {host}, reachable from other machines, and server.api_key is"
        " not set: anyone who can reach this port can run the models and read this project"
        " through the tools. Set server.api_key (BREAKINGWIND_SERVER__API_KEY), or bind"
        " 127.0.0.1 and reach it through an SSH tunnel."
    )


def server_config(
    app: ASGIApp,
    server: ServerSettings,
    *,
    host: str | None = None,
    port: int | None = None,
    log_level: str | None = None,
) -> uvicorn.Config:
    """The uvicorn config `serve` runs (and the tests' live servers, when asked)."""
    protocol = type(
        "HeadDeadlineH11Protocol",
        (HeadDeadlineH11Protocol,),
        {"head_timeout_s": server.header_timeout_s},
    )
    return uvicorn.Config(
        app,
        host=host or server.host,
        port=port or server.port,
        log_level=log_level or server.log_level,
        # h11 always, so that an installed httptools does not change the limits tested here.
        http=protocol,
        h11_max_incomplete_event_size=server.max_header_bytes,
        # On SIGTERM/SIGINT uvicorn stops accepting, lets in-flight requests run this long, then
        # runs the lifespan shutdown (which closes the engine).
        timeout_graceful_shutdown=server.shutdown_grace_s,
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (raises `OSError` when the port is taken): `serve` binds
    before it resumes any task, so a second daemon on the same port touches nothing."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
