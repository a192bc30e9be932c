"""A daemon of its own for a load run: `breakingwind serve` as a subprocess on a free loopback
port, with a temporary data dir and project, and the embedded default model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from breakingwind.config import AGENT_NAMES
from breakingwind.errors import DaemonError

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
# The embedded 135M model fills every agent call to its max_tokens (2048 by default, a minute of
# decoding under load), so with the default no workflow would get past its first stage. A
# smaller cap lets workflows reach the workspace, the tools and the test run.
AGENT_MAX_TOKENS = 192
# The environment's BREAKINGWIND_* settings reach the daemon (e.g. the agents' THREADS), but for
# those that would take it out of its temporary folder or off its port.
OWN_SETTINGS = frozenset(
    {
        "BREAKINGWIND_CONFIG",
        "BREAKINGWIND_HOME",
        "BREAKINGWIND_PROJECT_ROOT",
        "BREAKINGWIND_SERVER__HOST",
        "BREAKINGWIND_SERVER__PORT",
        "BREAKINGWIND_SERVER__API_KEY",
        "BREAKINGWIND_STORAGE__DATA_DIR",
        "BREAKINGWIND_PROJECT__ROOT",
        "BREAKINGWIND_ENGINE__MODELS_DIR",
    }
)


@dataclass
class SpawnedDaemon:
    url: str
    pid: int
    log_path: Path
    exit_code: int | None = None  # set once stopped


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_config(folder: Path, port: int, project: Path, max_queue: int | None) -> Path:
    """The default configuration but for the port, the data dir, the project, a models dir with
    no model files (so every agent runs the embedded default) and the agents' max_tokens."""
    queue = f"max_queue = {max_queue}\n" if max_queue else ""
    agents = "".join(f"[{agent}]\nmax_tokens = {AGENT_MAX_TOKENS}\n" for agent in AGENT_NAMES)
    config = folder / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\nlog_level = "warning"\n'
        f"[storage]\ndata_dir = {str(folder / 'data')!r}\n"
        f"[project]\nroot = {str(project)!r}\n"
        f"[engine]\nmodels_dir = {str(folder / 'models')!r}\n{queue}{agents}"
    )
    return config


@contextmanager
def spawned_daemon(
    folder: Path, project: Path, max_queue: int | None = None
) -> Iterator[SpawnedDaemon]:
    """Start the daemon, wait until /health says ok, and stop it with SIGTERM afterwards."""
    port = free_port()
    config = daemon_config(folder, port, project, max_queue)
    env = {k: v for k, v in os.environ.items() if k not in OWN_SETTINGS}
    log_path = folder / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "breakingwind", "--config", str(config), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    daemon = SpawnedDaemon(f"http://127.0.0.1:{port}", proc.pid, log_path)
    try:
        _wait_until_ready(daemon.url, proc, log_path)
        yield daemon
    finally:
        daemon.exit_code = _stop(proc)


def _wait_until_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise DaemonError(f"the daemon exited with {proc.returncode}:\n{tail}")
        try:
            if httpx2.get(f"{url}/health", timeout=2).json().get("status") == "ok":
                return
        except (httpx2.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise DaemonError(f"the daemon at {url} was not ready after {READY_TIMEOUT_S:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
