"""Shared fixtures: real settings in temp folders, the real embedded model loaded once per session,
scripted agents on a real engine, and a live uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from breakingwind.api.server import server_config
from breakingwind.config import AGENT_NAMES, Settings, load_settings
from breakingwind.engine import Engine
from breakingwind.engine.gguf_file import GGUFArray, GGUFHeader, GGUFTensor
from breakingwind.engine.scripted import Answer, ScriptedModel
from breakingwind.media import MediaService
from breakingwind.modelfiles.manifest import embedded_model_path
from breakingwind.runtime import Runtime, open_runtime
from breakingwind.tasks import TaskState, WorkflowOptions
from tests.media_files import SPOKEN_TASK, speak
from tests.pipeline_fixtures import TASK

TEST_N_CTX = 2048
T = TypeVar("T")


def write_config(folder: Path, text: str) -> Path:
    path = folder / "config.toml"
    path.write_text(text)
    return path


def make_settings(tmp: Path, extra: str = "", environ: dict[str, str] | None = None) -> Settings:
    """Settings whose model files are all missing (so every agent runs the embedded default)."""
    config = write_config(
        tmp,
        f"""
[storage]
data_dir = "data"
[project]
root = "."
[engine]
models_dir = "models"
{extra}
""",
    )
    small_contexts = {
        f"BREAKINGWIND_{agent.upper()}__N_CTX": str(TEST_N_CTX) for agent in AGENT_NAMES
    }
    return load_settings(config, environ={**small_contexts, **(environ or {})})


def script_agents(engine: Engine) -> dict[str, ScriptedModel]:
    """Serve every agent of `engine` from a `ScriptedModel`, through the production
    `Engine.replace_model` (like llm's MockModel); enqueue answers on the returned models."""
    models = {agent: ScriptedModel(agent) for agent in AGENT_NAMES}
    for agent, model in models.items():
        engine.replace_model(agent, model)
    return models


def scripted_engine(settings: Settings) -> tuple[Engine, dict[str, ScriptedModel]]:
    """An engine that is never started (nothing loads) with every agent scripted."""
    engine = Engine(settings)
    return engine, script_agents(engine)


@dataclass
class Harness:
    """Scripted agents on a real engine, run in a real runtime (store, pipeline, workspaces,
    run_tests) over a fixture project, as `breakingwind run --local` runs them."""

    settings: Settings
    engine: Engine
    project: Path
    models: dict[str, ScriptedModel]

    def script(self, agent: str, *answers: Answer) -> None:
        self.models[agent].enqueue(*answers)

    def in_runtime(self, work: Callable[[Runtime], Awaitable[T]]) -> T:
        """Run `work` in a runtime over the scripted engine."""

        async def go() -> T:
            async with open_runtime(self.settings, engine=self.engine) as runtime:
                return await work(runtime)

        return asyncio.run(go())

    def run(
        self,
        options: WorkflowOptions | None = None,
        cancel_after: float | None = None,
        task: str = TASK,
    ) -> tuple[TaskState, list[str]]:
        """One workflow to its end (or cancelled after `cancel_after` s): its final state and
        the types of its events."""

        async def go(runtime: Runtime) -> tuple[TaskState, list[str]]:
            state = runtime.pipeline.submit(task, self.project, options)
            if cancel_after is not None:
                await asyncio.sleep(cancel_after)
                await runtime.pipeline.cancel(state.task_id)
            final = await runtime.pipeline.wait(state.task_id)
            return final, [e.type for e in runtime.store.events_after(state.task_id)]

        return self.in_runtime(go)


def make_harness(tmp: Path, project: Path, extra: str = "") -> Harness:
    """A `Harness` over `project` with settings in `tmp` (close its engine when done)."""
    settings = make_settings(tmp, extra, environ={"BREAKINGWIND_PROJECT_ROOT": str(project)})
    engine, models = scripted_engine(settings)
    return Harness(settings, engine, project, models)


def header_read_by_gguf_reader(path: Path) -> GGUFHeader:
    """The header of `path` as the gguf package's reader sees it: the reference for ours."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(path, "r")
    fields = {
        key: GGUFArray(field.types[-1], len(field.data))
        if field.types[0] == GGUFValueType.ARRAY
        else field.contents()
        for key, field in reader.fields.items()
        if not key.startswith("GGUF.")  # the reader's own entries for the preamble
    }
    tensors = tuple(
        GGUFTensor(t.name, t.tensor_type, tuple(t.shape.tolist()), t.data_offset, t.n_bytes)
        for t in reader.tensors
    )
    version = reader.fields["GGUF.version"].contents()
    return GGUFHeader(version, fields, tensors, int(reader.alignment), reader.data_offset)


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    return embedded_model_path()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The embedded model, loaded once for the whole session and shared by all four agents."""
    with running_engine(make_settings(tmp_path_factory.mktemp("engine"))) as engine:
        yield engine


@contextmanager
def running_engine(settings: Settings) -> Iterator[Engine]:
    """An engine of `settings` with every model loaded (or failed); closed on exit."""
    engine = Engine(settings)
    engine.start()
    try:
        asyncio.run(engine.wait_ready())
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaService]:
    """The media service with default limits; Whisper and OCR load once, on first use."""
    service = MediaService(make_settings(tmp_path_factory.mktemp("media")))
    yield service
    asyncio.run(service.close())


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng saying the spoken task (`make test` installs espeak-ng when it can)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return speak(SPOKEN_TASK, tmp_path_factory.mktemp("speech") / "task.wav")


@pytest.fixture
def model_copy(tmp_path: Path, embedded_gguf: Path) -> Path:
    """A second, distinct model file (a copy of the embedded GGUF) for a second worker."""
    target = tmp_path / "models" / "second.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(embedded_gguf, target)
    return target


class LiveServer:
    """A real uvicorn server on 127.0.0.1 (free port) running in a background thread; with
    `settings`, configured as `breakingwind serve` configures it (its protocol and limits)."""

    def __init__(self, app: Any, settings: Settings | None = None) -> None:
        where = {"host": "127.0.0.1", "port": _free_port(), "log_level": "warning"}
        config = (
            server_config(app, settings.server, **where)
            if settings is not None
            else uvicorn.Config(app, **where)
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.config.port}"

    def __enter__(self) -> LiveServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn failed to start")
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def another_app_settings(engine: Engine, data_dir: Path) -> Settings:
    """A deep copy of the engine's settings with a data folder of its own, for a second app on
    the same engine (one data folder serves one app: the store locks it)."""
    settings = engine.settings.model_copy(deep=True)
    settings.storage.data_dir = data_dir
    return settings


@pytest.fixture(scope="module")
def api_server(engine: Engine) -> Iterator[LiveServer]:
    """The whole app over the shared embedded-model engine, live on 127.0.0.1 (per module)."""
    from breakingwind.api.app import create_app

    with LiveServer(create_app(engine.settings, engine)) as live:
        yield live


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The current environment without any BREAKINGWIND_* variables, for subprocesses."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BREAKINGWIND_")}


class DaemonProcess:
    """`breakingwind serve` as a real process on a free port, with the embedded model for every
    agent: for tests whose failure mode is the process dying (a segfault in llama.cpp)."""

    def __init__(self, tmp: Path, extra: str = "", environ: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.project = tmp / "project"
        self.project.mkdir(parents=True, exist_ok=True)
        config = write_config(
            tmp,
            f'[server]\nport = {self.port}\n[storage]\ndata_dir = "data"\n'
            f'[project]\nroot = "project"\n[engine]\nmodels_dir = "models"\n{extra}',
        )
        contexts = {f"BREAKINGWIND_{a.upper()}__N_CTX": str(TEST_N_CTX) for a in AGENT_NAMES}
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKINGWIND_")}
        self.log = (tmp / "daemon.log").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "breakingwind", "--config", str(config), "serve"],
            env={**env, **contexts, "BREAKINGWIND_HOME": str(tmp / "home"), **(environ or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def assert_alive(self) -> None:
        """The process still runs and answers /health."""
        assert self.proc.poll() is None, f"daemon exited {self.proc.returncode}:\n{self.output()}"
        assert httpx.get(f"{self.url}/health", timeout=30).status_code == 200

    def __enter__(self) -> DaemonProcess:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/health").json().get("status") == "ok":
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the daemon did not become ready:\n{self.output()}")

    def __exit__(self, *exc_info: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def parse_sse(text: str) -> list[dict]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if fields:
            events.append(
                {
                    "id": int(fields["id"]),
                    "event": fields["event"],
                    "data": json.loads(fields["data"]),
                }
            )
    return events


REPO = Path(__file__).resolve().parent.parent
# Small budgets keep a full workflow of the tiny model to a few tens of seconds.
FAST = """
[pipeline]
max_review_cycles = 1
stage_timeout_s = 120
planner_max_tool_calls = 1
coder_max_tool_calls = 0
"""
AGENT = """
[{agent}]
model = "missing-{agent}.gguf"
n_ctx = 2048
max_tokens = 160
"""


def daemon_toml(port: int, project: Path, extra: str = "", server: str = "") -> str:
    """A daemon's config.toml: `port`, data in ./data, `project`, models in ./models."""
    return f"""
[server]
port = {port}
{server}
[storage]
data_dir = "data"
[project]
root = "{project}"
[engine]
models_dir = "models"
{extra}"""


def daemon_config(tmp_path: Path, project: Path, port: int) -> Path:
    """The embedded model's daemon with small budgets (a whole workflow in tens of seconds)."""
    agents = "".join(
        AGENT.format(agent=a) for a in ("preprocessor", "planner", "coder", "reviewer")
    )
    return write_config(tmp_path, daemon_toml(port, project, FAST + agents))


class Daemon:
    """`breakingwind serve` as a process (or `argv`, another entry point that serves `config`)."""

    def __init__(
        self, config: Path, port: int, env: dict[str, str], argv: list[str] | None = None
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "breakingwind", "--config", str(config), "serve"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the daemon exited"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).json()["status"] == "ok":
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the daemon never became ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def watch_until(
    daemon: Daemon, after: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> tuple[str, list]:
    """Start the workflow and read its stream; SIGKILL the daemon once `after` is seen."""
    seen: list[dict[str, Any]] = []
    with httpx.stream(
        "POST", f"{daemon.url}/api/workflow", json={"input": TASK}, timeout=timeout
    ) as response:
        task_id = response.headers["x-task-id"]
        for event in sse_events(response):
            seen.append(event)
            if after(event):
                daemon.kill()
                return task_id, seen
    raise AssertionError(f"the stream ended before the kill point: {seen[-1]}")


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """A streamed response's events as they come (keepalive comments skipped)."""
    block: list[str] = []
    for line in response.iter_lines():
        if line:
            block.append(line)
            continue
        if block and not block[0].startswith(":"):
            yield from parse_sse("\n".join(block))
        block = []


def started(stage: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == "stage_started" and e["data"]["stage"] == stage


# A raw MCP `initialize` request (JSON-RPC), for tests that speak to /mcp without the SDK client.
MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "tests", "version": "0"},
    },
}


EXIT_GRACE_S = 120


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the summary, give the interpreter `EXIT_GRACE_S` to exit on its own; if a leaked
    non-daemon thread or executor job still holds it (seen once in a full run under load), print
    every thread's stack, which names the culprit, and exit with the suite's status instead of
    hanging CI."""

    def watchdog() -> None:
        time.sleep(EXIT_GRACE_S)
        print("\nthe test process did not exit; its threads:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(int(exitstatus))

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()
