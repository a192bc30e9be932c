"""Shared fixtures: real settings in temp folders, the real embedded model loaded once per session,
and a live uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from breakingwind.api.server import server_config
from breakingwind.config import AGENT_NAMES, Settings, load_settings
from breakingwind.engine import Engine
from breakingwind.engine.gguf_file import GGUFArray, GGUFHeader, GGUFTensor
from breakingwind.media import MediaService
from breakingwind.modelfiles.manifest import embedded_model_path
from tests.media_files import SPOKEN_TASK, speak

TEST_N_CTX = 2048


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
    settings = make_settings(tmp_path_factory.mktemp("engine"))
    engine = Engine(settings)
    engine.start()
    asyncio.run(engine.wait_ready())
    yield engine
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
