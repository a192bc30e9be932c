"""Agents on real OpenAI-compatible servers that are not this process: llama-cpp-python's own
server (`python -m llama_cpp.server`) and a second BreakingWind daemon (`python -m breakingwind
serve`), both serving the embedded model on 127.0.0.1.

The coder runs on the llama-cpp-python server, the reviewer on the second daemon (whose own coder
answers), the preprocessor and planner in this process. Each server starts once for the module.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
from pydantic import BaseModel

from breakingwind.api.app import create_app
from breakingwind.config import load_settings
from breakingwind.engine import Engine, GenerationRequest, generate_structured
from breakingwind.engine.remote import RemoteModel, check_remote
from tests.conftest import TEST_N_CTX, LiveServer, _free_port, running_engine, write_config

LLAMA_ALIAS = "smollm2"
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file of the project.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
}
README = [{"role": "user", "content": "Read the file README.md."}]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


class Person(BaseModel):
    name: str
    age: int


def _start(command: list[str], log: Path, ready_url: str, env: dict[str, str] | None = None):
    handle = log.open("w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            handle.close()
            raise RuntimeError(f"{command[:3]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return process, handle
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    handle.close()
    raise RuntimeError(f"{ready_url} did not come up: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes], handle: Any) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    handle.close()


@pytest.fixture(scope="module")
def llama_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the embedded model."""
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf),
        "--model_alias", LLAMA_ALIAS, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(TEST_N_CTX), "--n_threads", "1",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    process, handle = _start(command, log, f"{base}/models")
    yield base
    _stop(process, handle)


def _server_process(base_url: str) -> psutil.Process:
    """The process listening on `base_url`'s port."""
    port = int(base_url.split(":")[2].split("/")[0])
    for process in psutil.Process().children():
        if any(c.laddr.port == port for c in process.net_connections("tcp")):
            return process
    raise LookupError(f"no child process listens on port {port}")


@pytest.fixture(scope="module")
def second_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another BreakingWind daemon, as a subprocess, serving the embedded model."""
    import os

    folder = tmp_path_factory.mktemp("second-daemon")
    port = _free_port()
    config = folder / "config.toml"
    agents = "".join(f"[{a}]\nn_ctx = {TEST_N_CTX}\nthreads = 1\n" for a in ("coder", "planner"))
    config.write_text(
        f'[server]\nport = {port}\nlog_level = "warning"\n[storage]\ndata_dir = "data"\n'
        f'[project]\nroot = "."\n[engine]\nmodels_dir = "models"\n'
        f"[preprocessor]\nn_ctx = {TEST_N_CTX}\n[reviewer]\nn_ctx = {TEST_N_CTX}\n{agents}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKINGWIND_")}
    env["BREAKINGWIND_CONFIG"] = str(config)
    command = [sys.executable, "-m", "breakingwind", "serve"]
    process, handle = _start(command, folder / "daemon.log", f"http://127.0.0.1:{port}/health", env)
    yield f"http://127.0.0.1:{port}"
    _stop(process, handle)


@pytest.fixture(scope="module")
def engine(
    llama_server: str, second_daemon: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    config = f"""
[storage]
data_dir = "data"
[project]
root = "."
[engine]
models_dir = "models"
[preprocessor]
n_ctx = {TEST_N_CTX}
[planner]
n_ctx = {TEST_N_CTX}
[coder]
backend = "openai"
base_url = "{llama_server}"
model = "{LLAMA_ALIAS}"
n_ctx = {TEST_N_CTX}
structured_output = "json_object"
[reviewer]
backend = "openai"
base_url = "{second_daemon}/v1"
model = "breakingwind-coder"
"""
    # The reviewer's n_ctx is left out: it comes from the second daemon's model list.
    settings = load_settings(write_config(tmp_path_factory.mktemp("remote-servers"), config), {})
    with running_engine(settings) as engine:
        yield engine


@pytest.fixture(scope="module")
def daemon(engine: Engine) -> Iterator[str]:
    with LiveServer(create_app(engine.settings, engine)) as server:
        yield server.url


def test_remote_agents_are_not_loaded_locally(engine: Engine) -> None:
    assert set(engine.models) == {"preprocessor", "planner"}
    statuses = engine.status()
    assert statuses["coder"].backend == statuses["reviewer"].backend == "openai"
    assert statuses["planner"].backend == "local"
    assert engine.worker("reviewer").n_ctx == TEST_N_CTX  # the second daemon's context_length


@pytest.mark.parametrize("agent", ["coder", "reviewer"])
def test_engine_streams_a_chat_from_the_server(engine: Engine, agent: str) -> None:
    async def run() -> tuple[list[str], Any]:
        stream = await engine.stream(agent, GenerationRequest(messages=STORY, max_tokens=16))
        async with stream:
            deltas = [delta async for delta in stream]
        return deltas, stream.result

    deltas, result = asyncio.run(run())
    assert len(deltas) > 2 and "".join(deltas) == result.text
    assert result.finish_reason in ("stop", "length")
    assert 0 < result.usage.completion_tokens <= 16
    assert result.timings.first_token_at is not None and result.timings.decode_s > 0


def test_openai_sdk_chats_through_our_api_with_remote_agents(daemon: str) -> None:
    client = openai.OpenAI(base_url=f"{daemon}/v1", api_key="local")
    pieces = []
    stream = client.chat.completions.create(
        model="breakingwind-coder", messages=STORY, max_tokens=12, stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) > 2
    answer = client.chat.completions.create(
        model="breakingwind-reviewer", messages=STORY, max_tokens=8
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    health = httpx.get(f"{daemon}/health").json()
    assert health["agents"]["coder"]["backend"] == "openai"
    assert health["agents"]["reviewer"]["base_url"].endswith("/v1")


@pytest.mark.parametrize("agent", ["coder", "reviewer"])
def test_structured_output_is_asked_for_and_validated_here(engine: Engine, agent: str) -> None:
    messages = [{"role": "user", "content": "Bob is 30 years old. Reply with him as JSON."}]
    person = asyncio.run(
        generate_structured(engine, agent, messages, Person, max_tokens=60, temperature=0)
    )
    assert isinstance(person, Person)


@pytest.mark.parametrize("agent", ["coder", "reviewer"])
def test_tool_calls_come_back_as_tool_calls(engine: Engine, agent: str) -> None:
    request = GenerationRequest(
        messages=README, tools=[READ_FILE], tool_choice="read_file", max_tokens=60, temperature=0
    )
    result = asyncio.run(engine.complete(agent, request))
    assert result.finish_reason == "tool_calls"
    [call] = result.tool_calls
    assert call.name == "read_file" and call.id
    assert isinstance(json.loads(call.arguments)["path"], str)


def test_logprobs_from_a_remote_agent_are_a_400_naming_the_field(daemon: str) -> None:
    body = {"model": "breakingwind-coder", "messages": STORY, "max_tokens": 2, "logprobs": True}
    response = httpx.post(f"{daemon}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logprobs"


def test_streamed_tool_calls_reach_an_openai_client(daemon: str) -> None:
    client = openai.OpenAI(base_url=f"{daemon}/v1", api_key="local")
    stream = client.chat.completions.create(
        model="breakingwind-reviewer",
        messages=README,
        tools=[READ_FILE],
        tool_choice="required",
        max_tokens=60,
        temperature=0,
        stream=True,
    )
    names, arguments, finish = [], "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            names += [call.function.name] if call.function.name else []
            arguments += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason if chunk.choices else finish
    assert names == ["read_file"] and finish == "tool_calls"
    assert "path" in json.loads(arguments)


def test_cancelling_stops_the_remote_generation(
    engine: Engine, second_daemon: str, llama_server: str
) -> None:
    async def read_three_then_cancel(agent: str) -> None:
        stream = await engine.stream(agent, GenerationRequest(messages=STORY, max_tokens=1000))
        async with stream:
            for _ in range(3):
                await stream.__anext__()

    asyncio.run(read_three_then_cancel("reviewer"))
    deadline = time.monotonic() + 5
    while httpx.get(f"{second_daemon}/health").json()["agents"]["coder"]["busy"]:
        assert time.monotonic() < deadline, "the second daemon kept generating"
        time.sleep(0.05)

    # llama-cpp-python's server reports nothing; its CPU use shows whether it stopped (1000
    # tokens would keep its one thread busy for several seconds).
    server = _server_process(llama_server)
    asyncio.run(read_three_then_cancel("coder"))
    time.sleep(0.3)
    server.cpu_percent()
    assert server.cpu_percent(1.0) < 30, "llama-cpp-python's server kept generating"


@pytest.mark.parametrize("agent", ["coder", "reviewer"])
def test_check_remote_passes_against_real_servers(engine: Engine, agent: str) -> None:
    backend = engine.worker(agent)
    assert isinstance(backend, RemoteModel)
    ok, detail = asyncio.run(check_remote(backend))
    assert ok, detail
