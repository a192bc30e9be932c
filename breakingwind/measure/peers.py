"""The peers `breakingwind bench --peers` compares against, started on the model we measure.

- llama-cpp-python's own OpenAI server (`python -m llama_cpp.server`, its `server` extra): the
  same llama.cpp build as our engine, one request at a time. By default it aborts the stream in
  progress when another request arrives (`interrupt_requests`); it is started with that off, so
  that concurrent streams queue and all finish.
- llama.cpp's `llama-server` (continuous batching in C++): found on PATH or given with
  `--llama-server`; `scripts/build_llama_server.sh` builds it from the llama.cpp sources inside
  the llama-cpp-python sdist on PyPI, so it is the same llama.cpp commit as our engine.

Both get the settings our worker runs with (context, slots, threads, batch, offloaded layers,
flash attention), so that the comparison is of the serving stacks, not of the settings.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per readiness poll

START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ServingSettings:
    """What our worker runs with, to be given to the peers alike."""

    model_path: Path
    n_ctx: int
    slots: int
    threads: int
    threads_batch: int
    n_batch: int
    n_gpu_layers: int  # -1: all
    flash_attn: str = "off"  # as our load report says: "on", "off", or "auto" (llama.cpp decides)


@dataclass(frozen=True)
class Target:
    """An OpenAI-compatible server under load: where it is and which model id to send."""

    name: str
    url: str
    model: str


def llama_server_binary(explicit: str | None = None) -> Path | None:
    """`--llama-server`, else `llama-server` on PATH."""
    candidate = explicit or shutil.which("llama-server")
    return Path(candidate) if candidate and Path(candidate).is_file() else None


def _llama_cpp_python_argv(settings: ServingSettings, port: int) -> list[str]:
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(settings.model_path),
        "--model_alias", "peer",
        "--n_ctx", str(settings.n_ctx),
        "--n_threads", str(settings.threads),
        "--n_threads_batch", str(settings.threads_batch),
        "--n_batch", str(settings.n_batch),
        "--n_gpu_layers", str(settings.n_gpu_layers),
        # no "auto" there: on GPU backends auto turns it on for these models
        "--flash_attn", str(settings.flash_attn != "off"),
        # its default cuts off the stream in progress when another request arrives; queue instead
        "--interrupt_requests", "False",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def _llama_server_argv(binary: Path, settings: ServingSettings, port: int) -> list[str]:
    layers = 999 if settings.n_gpu_layers < 0 else settings.n_gpu_layers
    return [
        str(binary),
        "-m", str(settings.model_path),
        "-c", str(settings.n_ctx),
        "-np", str(settings.slots),
        "--kv-unified",  # one cache shared by the slots, as our worker has
        "-t", str(settings.threads),
        "-tb", str(settings.threads_batch),
        "-b", str(settings.n_batch),
        "-ngl", str(layers),
        "-fa", settings.flash_attn,
        "--no-webui",
        # its host-RAM prompt cache saves a slot's state before each new request, which stalled
        # every new request for ~36 s with a 16K-cell cache on the H100 (docs/benchmarks.md)
        "--cache-ram", "0",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PeerUnavailable(RuntimeError):
    """A peer could not be started; the bench says why and goes on without it."""


@contextmanager
def _serve(name: str, argv_for_port: list[str], port: int) -> Iterator[Target]:
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
    process = subprocess.Popen(
        argv_for_port, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(process, url, Path(log.name))
        yield Target(name, url, "peer")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def _wait_until_serving(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise PeerUnavailable(f"exited with {process.returncode}: {' | '.join(tail)}")
        try:
            # llama-server answers 503 while it loads; both answer 200 once the model is in
            if httpx2.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.25)
    raise PeerUnavailable(f"not serving after {START_TIMEOUT_S:.0f} s")


@contextmanager
def llama_cpp_python_server(settings: ServingSettings) -> Iterator[Target]:
    try:
        import llama_cpp.server.app  # noqa: F401  (its `server` extra)
    except ImportError as exc:
        raise PeerUnavailable(f"llama-cpp-python's server extra is not installed ({exc})") from exc
    port = free_port()
    with _serve("llama-cpp-python", _llama_cpp_python_argv(settings, port), port) as target:
        yield target


@contextmanager
def llama_server(binary: Path | None, settings: ServingSettings) -> Iterator[Target]:
    if binary is None:
        raise PeerUnavailable(
            "no llama-server binary (build one with scripts/build_llama_server.sh and pass"
            " --llama-server PATH)"
        )
    port = free_port()
    with _serve("llama-server", _llama_server_argv(binary, settings, port), port) as target:
        yield target
