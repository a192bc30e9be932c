"""Listening beyond loopback without an API key: `serve` warns loudly (issue 9, DNS rebinding and
exposure). The Host/Origin guard itself is tested in test_openai_api.py."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from breakingwind.api.server import exposure_warning
from tests.conftest import TEST_N_CTX, write_config


@pytest.mark.parametrize(
    ("host", "api_key", "warns"),
    [
        ("127.0.0.1", None, False),
        ("127.0.0.2", None, False),
        ("::1", None, False),
        ("[::1]", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("::", None, True),
        ("192.168.1.20", None, True),
        ("my-laptop.local", None, True),
        ("0.0.0.0", "a-key", False),
    ],
)
def test_exposure_warning(host: str, api_key: str | None, warns: bool) -> None:
    warning = exposure_warning(host, api_key)
    assert (warning is not None) == warns
    if warning:
        assert host in warning and "api_key" in warning


def _serve_output(tmp_path: Path, port: int, env: dict[str, str], extra: str) -> str:
    """Start `breakingwind serve --host 0.0.0.0`, wait until it answers, stop it, return what it
    printed."""
    config = write_config(
        tmp_path, f'[server]\nport = {port}\n{extra}[engine]\nmodels_dir = "models"\n'
    )
    contexts = {
        f"BREAKINGWIND_{agent}__N_CTX": str(TEST_N_CTX)
        for agent in ("PREPROCESSOR", "PLANNER", "CODER", "REVIEWER")
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breakingwind",
            "--config",
            str(config),
            "serve",
            "--host",
            "0.0.0.0",
        ],
        env={**env, **contexts, "BREAKINGWIND_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0]
        proc.terminate()
        return proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_on_all_interfaces_without_a_key_warns(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    output = _serve_output(tmp_path, free_port, clean_env, "")
    assert "WARNING: listening on 0.0.0.0" in output


def test_serve_on_all_interfaces_with_a_key_does_not_warn(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    output = _serve_output(tmp_path, free_port, clean_env, 'api_key = "s3cret-key"\n')
    assert "WARNING: listening on" not in output
    assert "s3cret-key" not in output  # and the key is never printed
