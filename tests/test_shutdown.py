"""`breakingwind serve` as a process: SIGTERM stops it cleanly within the grace period."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import TEST_N_CTX, write_config

GRACE_S = 5


def test_sigterm_shuts_down_within_the_grace_period(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    config = write_config(
        tmp_path,
        f"[server]\nport = {free_port}\nshutdown_grace_s = {GRACE_S}\n"
        '[engine]\nmodels_dir = "models"\n',
    )
    contexts = {f"BREAKINGWIND_{a}__N_CTX": str(TEST_N_CTX) for a in ("PREPROCESSOR", "PLANNER")}
    contexts |= {f"BREAKINGWIND_{a}__N_CTX": str(TEST_N_CTX) for a in ("CODER", "REVIEWER")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "serve"],
        env={**clean_env, **contexts, "BREAKINGWIND_HOME": str(tmp_path / "home")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_ready(f"http://127.0.0.1:{free_port}/health", proc)
        # a client still holding a keep-alive connection must not delay the exit
        with httpx.Client() as client:
            assert client.get(f"http://127.0.0.1:{free_port}/health").status_code == 200
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=GRACE_S + 10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # uvicorn re-raises the signal once it has shut down, so the exit status says "SIGTERM"
    # (systemd counts that as a clean stop; Restart=on-failure does not restart it)
    assert proc.returncode == -signal.SIGTERM, output
    assert took < GRACE_S, f"took {took:.1f}s"
    assert "Shutting down" in output
    assert "Application shutdown complete" in output  # the lifespan closed the engine
    assert "Traceback" not in output


def _wait_until_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(url).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the daemon did not become ready")
