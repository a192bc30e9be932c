"""The daemon over real HTTP: a live uvicorn on 127.0.0.1 and `breakingwind serve` as a process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from breakingwind.api.app import create_app
from breakingwind.config import load_settings
from breakingwind.engine import Engine
from tests.conftest import LiveServer, make_settings, write_config


def test_health_reports_every_agent_ready(engine: Engine) -> None:
    with LiveServer(create_app(engine.settings, engine)) as server:
        response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["agents"]) == {"preprocessor", "planner", "coder", "reviewer"}
    coder = body["agents"]["coder"]
    assert coder["state"] == "ready" and coder["embedded_default"] is True
    assert coder["load"]["backend"] == "CPU"


def test_health_is_degraded_when_a_model_failed(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bad.gguf").write_bytes(b"<html>" * 100)
    settings = make_settings(tmp_path, environ={"BREAKINGWIND_PLANNER__MODEL": "bad.gguf"})
    with LiveServer(create_app(settings)) as server:
        deadline = time.monotonic() + 30
        while (body := httpx.get(f"{server.url}/health").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert body["status"] == "degraded"
    assert body["agents"]["planner"]["state"] == "failed"
    assert "not a GGUF file" in body["agents"]["planner"]["error"]
    assert body["agents"]["coder"]["state"] == "ready"


def test_serve_process_answers_health_with_the_embedded_model(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    config = write_config(
        tmp_path, f'[server]\nport = {free_port}\n[engine]\nmodels_dir = "models"\n'
    )
    assert load_settings(config, environ={}).server.port == free_port
    proc = subprocess.Popen(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "serve"],
        env={**clean_env, "BREAKINGWIND_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = _wait_for_ready(f"http://127.0.0.1:{free_port}/health", proc)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert body["status"] == "ok"
    assert all(agent["state"] == "ready" for agent in body["agents"].values())
    # One clear line per agent says it fell back to the embedded default.
    assert output.count("using the embedded default SmolLM2-135M-Instruct") == 4
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status reports the signal.
    assert "Application shutdown complete" in output
    assert proc.returncode in (0, -15)
    assert (tmp_path / "home").is_dir()


def _wait_for_ready(url: str, proc: subprocess.Popen[str]) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the daemon exited"
        try:
            response = httpx.get(url, timeout=2)
            if response.json()["status"] != "loading":
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the daemon never became ready")
