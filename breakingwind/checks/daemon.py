"""The running daemon: /health, /v1/models, a one-token chat, and an MCP tools/list."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from breakingwind import __version__
from breakingwind.checks.context import Context, Result, Skipped, fail, ok, warn
from breakingwind.errors import BreakingWindError, DaemonError, DaemonUnreachable

START_DAEMON = "`make run`, or `breakingwind service install` to run it in the background"
DAEMON_LOGS = "read the daemon's log: `breakingwind service logs` (or the terminal of `make run`)"
CHAT_MODEL = "breakingwind-coder"
CHAT_TIMEOUT_S = 120.0


AGENT_STATES: dict[str, Callable[[str, dict[str, Any]], Result]] = {
    "ready": lambda agent, info: ok(f"{agent}: ready ({_load_summary(info)})"),
    "loading": lambda agent, info: warn(
        f"{agent}: still loading {info.get('model_file')}",
        "wait until /health says ok, then run `breakingwind doctor` again",
    ),
    "failed": lambda agent, info: fail(
        f"{agent}: failed to load: {info.get('error')}",
        f"fix what `models`/`memory` report for {agent}, then restart the daemon",
    ),
}


def _load_summary(info: dict[str, Any]) -> str:
    load = info.get("load") or {}
    backend = load.get("backend", "?")
    layers = f"{load.get('gpu_layers_offloaded')}/{load.get('n_layers', 0) + 1} layers on GPU"
    where = backend if backend == "CPU" else f"{backend}, {layers}"
    source = "embedded default" if info.get("embedded_default") else "configured model"
    return f"{Path(str(info.get('model_file'))).name}, {source}, {where}"


def check_daemon(ctx: Context) -> Iterator[Result]:
    """GET /health: is a daemon running at the URL, which version, and is each agent ready?"""
    health = ctx.probe()
    if isinstance(health, DaemonUnreachable):
        yield warn(f"not running: nothing answers at {ctx.url}", START_DAEMON)
        return
    if isinstance(health, DaemonError):
        yield fail(str(health), "pass the daemon's address with --url, or stop what answers there")
        return
    if health.get("version") != __version__:
        yield warn(
            f"the daemon at {ctx.url} runs version {health.get('version')}, this is {__version__}",
            "restart the daemon (`breakingwind service install` restarts the service)",
        )
    for agent, info in health["agents"].items():
        yield AGENT_STATES.get(info.get("state"), AGENT_STATES["failed"])(agent, info)


def check_openai_models(ctx: Context) -> Iterator[Result]:
    ctx.require_daemon()
    try:
        ids = ctx.client().model_ids()
    except DaemonError as exc:
        yield _daemon_failure(exc)
        return
    if CHAT_MODEL not in ids:
        yield fail(f"GET /v1/models does not list {CHAT_MODEL}: {ids}", DAEMON_LOGS)
    else:
        yield ok(f"GET /v1/models lists {', '.join(ids)}")


def check_chat(ctx: Context) -> Iterator[Result]:
    """A one-token chat with the coder's model: the whole OpenAI path, end to end."""
    state = ctx.require_daemon()["agents"].get("coder", {}).get("state")
    if state != "ready":
        raise Skipped(f"the coder's model is {state or 'missing'}")
    started = time.perf_counter()
    try:
        body = ctx.client().chat(CHAT_MODEL, "Say OK.", max_tokens=1, timeout_s=CHAT_TIMEOUT_S)
    except DaemonError as exc:
        yield _daemon_failure(exc)
        return
    elapsed = time.perf_counter() - started
    text = body["choices"][0]["message"].get("content")
    tokens = (body.get("usage") or {}).get("completion_tokens")
    yield ok(f"{CHAT_MODEL} answered {text!r} ({tokens} token, {elapsed:.2f} s)")


def check_mcp(ctx: Context) -> Iterator[Result]:
    """An MCP tools/list over Streamable HTTP with the official SDK client."""
    ctx.require_daemon()
    try:
        names = ctx.client().mcp_tool_names()
    except DaemonError as exc:
        yield _daemon_failure(exc)
        return
    if not names:
        yield fail(f"MCP tools/list at {ctx.url}/mcp returned no tools", DAEMON_LOGS)
        return
    yield ok(f"MCP tools/list at {ctx.url}/mcp: {len(names)} tools ({', '.join(names)})")
    try:
        registry = [spec.name for spec in ctx.tools.specs()]
    except BreakingWindError:
        return  # `tools` reports why the registry does not build here
    if sorted(registry) != sorted(names):
        yield warn(
            f"the daemon serves other tools than this version's registry ({', '.join(registry)})",
            "restart the daemon (`breakingwind service install` restarts the service)",
        )


DAEMON_STATUS_FIXES = {
    401: "set [server] api_key in config.toml (or BREAKINGWIND_SERVER__API_KEY) to its key",
    403: "run the doctor on the daemon's machine, or add this host to server.allowed_hosts",
}


def _daemon_failure(exc: DaemonError) -> Result:
    return fail(str(exc), DAEMON_STATUS_FIXES.get(exc.status or 0, DAEMON_LOGS))
