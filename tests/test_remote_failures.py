"""A remote agent whose server fails: every failure is a typed error, the daemon keeps serving the
other agents, /health marks the agent degraded, and the API key never leaks.

The misbehaving server is `tests/fake_openai.py` (real HTTP on 127.0.0.1); the other agents run
the real embedded model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from breakingwind.api.app import create_app
from breakingwind.cli import main
from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.remote import RemoteModel, check_remote
from breakingwind.errors import (
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    QueueFull,
)
from tests.conftest import LiveServer, _free_port, make_settings, running_engine
from tests.fake_openai import Recorded, build_app

KEY_ENV = "BW_REMOTE_TEST_KEY"
KEY = "sk-bw-canary-7f3a9c1e5d"  # recognisable, so any leak is found by a plain search
HELLO = [{"role": "user", "content": "Say hello."}]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()
    with LiveServer(build_app(recorded)) as server:
        yield f"{server.url}/v1", recorded


def remote_config(base_url: str) -> str:
    return f"""
[coder]
backend = "openai"
base_url = "{base_url}"
model = "ok"
api_key_env = "{KEY_ENV}"
n_ctx = 4096
"""


@pytest.fixture(scope="module")
def engine(
    fake: tuple[str, Recorded], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """The coder on the fake server (with an API key), the other agents on the embedded model."""
    folder = tmp_path_factory.mktemp("remote-failures")
    settings = make_settings(folder, remote_config(fake[0]), environ={KEY_ENV: KEY})
    with running_engine(settings) as engine:
        yield engine


@pytest.fixture(scope="module")
def daemon(engine: Engine) -> Iterator[str]:
    with LiveServer(create_app(engine.settings, engine)) as server:
        yield server.url


@pytest.fixture
def coder_on(engine: Engine) -> Iterator[Callable[..., RemoteModel]]:
    """Point the coder at one of the fake server's behaviours (with other settings changed);
    the configured backend comes back after the test."""
    configured = engine.worker("coder")
    assert isinstance(configured, RemoteModel)

    def use(model: str, **changes: Any) -> RemoteModel:
        settings = configured.settings.model_copy(update={"model": model, **changes})
        backend = RemoteModel("coder", settings, max_queue=engine.settings.engine.max_queue)
        backend.start()
        engine.replace_model("coder", backend)
        return backend

    yield use
    engine.replace_model("coder", configured)


def complete(engine: Engine, agent: str = "coder", **request: Any) -> Any:
    return asyncio.run(engine.complete(agent, GenerationRequest(messages=HELLO, **request)))


def test_a_working_remote_agent_streams_with_usage_and_sends_the_key(
    engine: Engine, fake: tuple[str, Recorded]
) -> None:
    result = complete(engine)
    assert result.text == "Hello from fake"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 3)
    assert result.timings.first_token_at is not None
    assert fake[1].authorization[-1] == f"Bearer {KEY}"
    assert engine.status()["coder"].backend == "openai"


def test_503_with_retry_after_is_retried_then_succeeds(
    engine: Engine, coder_on: Callable[..., RemoteModel], fake: tuple[str, Recorded]
) -> None:
    coder_on("flaky-503")
    started = time.monotonic()
    result = complete(engine)
    assert result.text == "Hello from fake"
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 was honoured
    assert fake[1].models[-2:] == ["flaky-503", "flaky-503"]


def test_always_503_gives_backend_unavailable_after_the_retries(
    engine: Engine, coder_on: Callable[..., RemoteModel], fake: tuple[str, Recorded]
) -> None:
    backend = coder_on("always-503", retries=1)
    before = len(fake[1].models)
    with pytest.raises(BackendUnavailable, match="503 after 2 attempts") as caught:
        complete(engine)
    assert caught.value.retry_after_s == 1
    assert len(fake[1].models) - before == 2
    assert backend.last_error is not None and "BackendUnavailable" in backend.last_error


def test_a_retry_after_past_the_bound_fails_at_once(
    engine: Engine, coder_on: Callable[..., RemoteModel]
) -> None:
    coder_on("busy-for-an-hour", max_retry_wait_s=5)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="more than max_retry_wait_s") as caught:
        complete(engine)
    assert time.monotonic() - started < 2
    assert caught.value.retry_after_s == 3600


def test_a_slow_server_gives_backend_timeout(
    engine: Engine, coder_on: Callable[..., RemoteModel]
) -> None:
    coder_on("slow", read_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(BackendTimeout, match="no answer for 0.5s"):
        complete(engine)
    assert time.monotonic() - started < 3


def test_a_malformed_stream_gives_backend_protocol_error(
    engine: Engine, coder_on: Callable[..., RemoteModel]
) -> None:
    coder_on("garbage")
    with pytest.raises(BackendProtocolError, match="malformed stream chunk"):
        complete(engine)
    coder_on("unfinished")
    with pytest.raises(BackendProtocolError, match="ended the stream before its last chunk"):
        complete(engine)


def test_connection_refused_gives_backend_unavailable(
    engine: Engine, coder_on: Callable[..., RemoteModel]
) -> None:
    coder_on("ok", base_url=f"http://127.0.0.1:{_free_port()}/v1")
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        complete(engine)


def test_the_server_killed_mid_stream_gives_backend_unavailable(
    engine: Engine, coder_on: Callable[..., RemoteModel], tmp_path: Path
) -> None:
    port = _free_port()
    log = (tmp_path / "fake.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", str(port)], cwd=REPO, stdout=log, stderr=log
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/v1/models")
        coder_on("trickle", base_url=f"http://127.0.0.1:{port}/v1")

        async def read_then_kill() -> list[str]:
            deltas = []
            stream = await engine.stream("coder", GenerationRequest(messages=HELLO))
            async with stream:
                async for delta in stream:
                    deltas.append(delta)
                    if len(deltas) == 3:
                        server.send_signal(signal.SIGKILL)
            return deltas

        with pytest.raises(BackendUnavailable, match="lost mid-stream"):
            asyncio.run(read_then_kill())
    finally:
        server.kill()
        server.wait()
        log.close()


def test_max_concurrent_bounds_requests_in_flight(
    engine: Engine, coder_on: Callable[..., RemoteModel]
) -> None:
    backend = coder_on("trickle", max_concurrent=1)
    backend.max_queue = 1

    async def two_streams() -> None:
        first = await engine.stream("coder", GenerationRequest(messages=HELLO))
        second = await engine.stream("coder", GenerationRequest(messages=HELLO))
        await first.__anext__()
        assert (backend.busy, backend.queue_depth) == (True, 1)
        with pytest.raises(QueueFull):
            await engine.stream("coder", GenerationRequest(messages=HELLO))
        await first.aclose()
        assert await second.__anext__() == " tick"
        await second.aclose()

    asyncio.run(two_streams())


def test_cancelling_closes_the_request(
    engine: Engine, coder_on: Callable[..., RemoteModel]
) -> None:
    backend = coder_on("trickle")

    async def cancel_after_two() -> Any:
        stream = await engine.stream("coder", GenerationRequest(messages=HELLO))
        await stream.__anext__()
        await stream.__anext__()
        stream.cancel()
        started = time.monotonic()
        while backend.busy:
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    assert asyncio.run(cancel_after_two()) < 2


def test_failures_over_http_are_typed_and_the_other_agents_keep_serving(
    engine: Engine, daemon: str, coder_on: Callable[..., RemoteModel]
) -> None:
    expectations = {
        "always-503": (503, "backend_unavailable"),
        "slow": (504, "backend_timeout"),
        "garbage": (502, "backend_protocol_error"),
    }
    for model, (status, code) in expectations.items():
        coder_on(model, retries=0, read_timeout_s=0.5)
        body = {"model": "breakingwind-coder", "messages": HELLO, "max_tokens": 8}
        answer = httpx.post(f"{daemon}/v1/chat/completions", json=body, timeout=30)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
        if model == "always-503":
            assert answer.headers["retry-after"] == "1"
    health = httpx.get(f"{daemon}/health").json()
    assert health["status"] == "degraded"
    assert health["agents"]["coder"]["degraded"] is True
    assert "BackendProtocolError" in health["agents"]["coder"]["last_error"]
    assert health["agents"]["planner"]["degraded"] is False
    local = httpx.post(
        f"{daemon}/v1/chat/completions",
        json={"model": "breakingwind-planner", "messages": HELLO, "max_tokens": 4},
        timeout=60,
    )
    assert local.status_code == 200
    coder_on("ok")
    assert (
        httpx.post(
            f"{daemon}/v1/chat/completions",
            json={"model": "breakingwind-coder", "messages": HELLO},
            timeout=30,
        ).json()["choices"][0]["message"]["content"]
        == "Hello from fake"
    )
    assert httpx.get(f"{daemon}/health").json()["agents"]["coder"]["degraded"] is False


def test_a_mid_stream_failure_over_sse_is_an_error_event(
    daemon: str, coder_on: Callable[..., RemoteModel]
) -> None:
    coder_on("garbage")
    body = {"model": "breakingwind-coder", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{daemon}/v1/chat/completions", json=body, timeout=30) as answer:
        events = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "backend_protocol_error"


def test_check_remote_reports_reachability_the_model_and_a_round_trip(
    coder_on: Callable[..., RemoteModel],
) -> None:
    ok, detail = asyncio.run(check_remote(coder_on("ok")))
    assert ok and "one-token round trip" in detail
    ok, detail = asyncio.run(check_remote(coder_on("no-such-model")))
    assert not ok and "does not list the model" in detail
    ok, detail = asyncio.run(check_remote(coder_on("ok", base_url="http://127.0.0.1:9/v1")))
    assert not ok and "cannot connect" in detail


def test_the_api_key_never_leaks(
    engine: Engine,
    daemon: str,
    coder_on: Callable[..., RemoteModel],
    fake: tuple[str, Recorded],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    coder_on("echo-key")
    with pytest.raises(BackendRejected) as caught:
        complete(engine)
    assert caught.value.status_code == 401 and "***" in str(caught.value)
    seen.append(str(caught.value))
    for model in ("echo-key", "garbage", "slow"):
        coder_on(model, retries=0, read_timeout_s=0.5)
        for stream in (False, True):
            body = {"model": "breakingwind-coder", "messages": HELLO, "stream": stream}
            seen.append(httpx.post(f"{daemon}/v1/chat/completions", json=body, timeout=30).text)
    seen.append(httpx.get(f"{daemon}/health").text)
    seen.append(httpx.get(f"{daemon}/metrics").text)
    seen.append(httpx.get(f"{daemon}/v1/models").text)
    seen.append(repr(engine.settings) + engine.settings.model_dump_json())
    config = tmp_path / "config.toml"
    config.write_text(remote_config(fake[0]))
    listed = CliRunner().invoke(
        main, ["--config", str(config), "models", "list", "--json"], env={KEY_ENV: KEY}
    )
    assert listed.exit_code == 0, listed.output
    seen.append(listed.output)
    seen.append(caplog.text)
    assert fake[1].authorization[-1] == f"Bearer {KEY}"  # the key did go to the server
    leaks = [text for text in seen if KEY in text]
    assert not leaks


def _wait_until_up(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")
