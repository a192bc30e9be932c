"""This machine: the port, the data dir, the SQLite database, the background service."""

from __future__ import annotations

import errno
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psutil

from breakingwind.checks.context import Context, Result, fail, ok, warn
from breakingwind.errors import ServiceError
from breakingwind.service import Platform, platform_for, service_spec


def check_port(ctx: Context) -> Iterator[Result]:
    """The configured port is free, or held by a BreakingWind daemon (asked over /health)."""
    server = ctx.settings.server
    where = f"{server.host}:{server.port}"
    error = _bind_error(server.host, server.port)
    if error is None:
        yield ok(f"{where} is free")
        return
    move = (
        "set [server] port in config.toml (or BREAKINGWIND_SERVER__PORT) to a free port,"
        " or host to 127.0.0.1"
    )
    if error.errno != errno.EADDRINUSE:
        yield fail(f"cannot listen on {where}: {error.strerror or error}", move)
        return
    health = ctx.probe(server.url)
    if isinstance(health, dict):
        yield ok(
            f"{where} is in use by a BreakingWind daemon (version {health.get('version')},"
            f" status {health.get('status')})"
        )
        return
    owner = _listener(server.port)
    yield fail(
        f"{where} is in use by {owner}, not by a BreakingWind daemon", f"stop {owner}, or {move}"
    )


def _bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on host:port now (None: it could); binds as uvicorn does."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host}: {exc.strerror}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


def _listener(port: int) -> str:
    """The program listening on `port`, as "name (pid N)" when the OS lets us see it."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid:
                    return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
    except (psutil.Error, OSError):
        pass
    return "another program"


def check_data_dir(ctx: Context) -> Iterator[Result]:
    """A temp file can be created (and is deleted) in the data dir, or where it will be made."""
    data_dir = ctx.settings.storage.data_dir
    fix = "set storage.data_dir in config.toml (or BREAKINGWIND_HOME) to a writable folder"
    existing = next(path for path in (data_dir, *data_dir.parents) if path.exists())
    if not existing.is_dir():
        yield fail(f"{data_dir} cannot be a folder: {existing} is a file", fix)
        return
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".breakingwind-doctor-"):
            pass
    except OSError as exc:
        yield fail(f"{existing} is not writable: {exc.strerror or exc}", fix)
        return
    if existing == data_dir:
        yield ok(f"{data_dir} is writable")
    else:
        yield ok(f"{data_dir} will be created on first start ({existing} is writable)")


def check_database(ctx: Context) -> Iterator[Result]:
    """Opened read-only: `PRAGMA integrity_check` and `PRAGMA journal_mode`."""
    path = ctx.settings.storage.database_path.resolve()
    if not path.exists():
        yield ok(f"{path} does not exist yet: created on first start")
        return
    fix = (
        f"stop the daemon and move the file aside: mv {path} {path}.broken (a new database is"
        f" created on the next start; `sqlite3 {path}.broken .recover` may save its tasks)"
    )
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    except sqlite3.Error as exc:
        yield fail(f"{path} cannot be read as SQLite: {exc}", fix)
        return
    if problems != ["ok"]:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        yield fail(f"{path} fails PRAGMA integrity_check: {problems[0]}{more}", fix)
        return
    size = path.stat().st_size / 1024**2
    yield ok(f"{path}: integrity ok, journal_mode {journal}, {size:.1f} MiB")


def check_service(ctx: Context) -> Iterator[Result]:
    """The background service, when installed: current, and running (never FAIL: it is optional)."""
    try:
        manager = platform_for(sys.platform, ctx.home)
    except ServiceError:
        yield ok(f"no background service on {sys.platform}: run `breakingwind serve`")
        return
    path = manager.path()
    if not path.exists():
        yield ok(f"not installed ({manager.name}); optional: `breakingwind service install`")
        return
    stale = _stale_service(ctx, manager, path)
    if stale:
        yield warn(f"{path} is out of date: {stale}", "breakingwind service install")
    if not manager.available():
        yield ok(
            f"installed at {path}; its state is unknown: {manager.tool} has no user session here"
        )
        return
    if manager.run(manager.status_command()).returncode == 0:
        yield ok(f"{manager.name} service installed at {path} and active")
    else:
        yield warn(
            f"{manager.name} service installed at {path} but not running",
            "breakingwind service logs (why it stopped), then breakingwind service install",
        )


def _stale_service(ctx: Context, manager: Platform, path: Path) -> str:
    try:
        expected = manager.render(service_spec(ctx.settings))
    except ServiceError:
        return ""  # no config file: nothing to compare with
    if path.read_text(errors="replace") == expected:
        return ""
    return "it runs another interpreter, config file or data dir than this doctor's"
