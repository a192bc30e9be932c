"""The coding agents people use, run non-interactively against a real daemon (the embedded model):
Codex CLI (Responses API), Claude Code (Messages API), opencode, aider and llm (chat completions).

Each asks for a one-file edit and must exit 0; the tiny model's answer is not judged, the protocol
is. The clients are installed at pinned versions by `scripts/install_clients.sh` into
$BW_CLIENTS_DIR (default ~/.cache/breakingwind/clients); a client not installed there is skipped.
They run offline: HOME is a temporary folder and telemetry and update checks are off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _free_port

CLIENTS_DIR = Path(os.environ.get("BW_CLIENTS_DIR", "~/.cache/breakingwind/clients")).expanduser()
REPO = Path(__file__).resolve().parent.parent
TASK = "In calc.py, add() subtracts. Make it return a + b."
CALC = "def add(a, b):\n    return a - b\n"
OFFLINE = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "NO_UPDATE_NOTIFIER": "1",
    "DO_NOT_TRACK": "1",
}

# Each run prefills a client's whole prompt (thousands of tokens) on 2 CPU cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def client_binary(name: str, *parts: str) -> Path:
    path = CLIENTS_DIR.joinpath(name, *parts)
    if not path.exists():
        pytest.skip(f"{name} is not installed (scripts/install_clients.sh {name})")
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`breakingwind serve` on a free port: every agent on the embedded model."""
    folder = tmp_path_factory.mktemp("daemon")
    (folder / "config.toml").write_text(
        '[storage]\ndata_dir = "data"\n[project]\nroot = "."\n'
        # Without the guard 3 of 20 answers of the embedded model to Claude Code's prompt looped
        # to the limit (1024 tokens), and Claude Code exits 1 when its retries end the same way.
        # The guard ends loops, as a user of a small model would turn it on.
        "[engine]\nparallel = 1\nrepetition_guard = true\n"
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKINGWIND_")}
    env.update(
        PYTHONPATH=str(REPO),
        BREAKINGWIND_CONFIG=str(folder / "config.toml"),
        BREAKINGWIND_SERVER__PORT=str(port),
        # Agents answer as much as clients ask for (Claude Code asks for 32000 tokens). With the
        # guard on, 20 of 20 answers to Claude Code's prompt ended within 1024 tokens (3 of 20
        # ran past 256).
        BREAKINGWIND_CODER__MAX_TOKENS="1024",
    )
    log = (folder / "daemon.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "breakingwind", "serve"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"the daemon did not start: {(folder / 'daemon.log').read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def run_client(argv: list[str], project: Path, env: dict[str, str]) -> None:
    home = project.parent / "home"
    home.mkdir(exist_ok=True)
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **OFFLINE,
        **env,
    }
    done = subprocess.run(
        argv,
        cwd=project,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (
        f"{argv[0]} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def test_codex_cli_edits_over_the_responses_api(daemon: str, project: Path) -> None:
    codex = client_binary("codex", "node_modules", ".bin", "codex")
    codex_home = project.parent / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        f"""model = "breakingwind-coder"
model_provider = "breakingwind"
check_for_update_on_startup = false
[analytics]
enabled = false
[model_providers.breakingwind]
name = "BreakingWind"
base_url = "{daemon}/v1"
wire_api = "responses"
# A slow CPU may prefill Codex's prompt for minutes before the first token.
stream_idle_timeout_ms = 1200000
"""
    )
    argv = [str(codex), "exec", "--skip-git-repo-check", "--sandbox", "workspace-write", TASK]
    run_client(argv, project, {"CODEX_HOME": str(codex_home)})


def test_claude_code_edits_over_the_messages_api(daemon: str, project: Path) -> None:
    claude = client_binary("claude", "node_modules", ".bin", "claude")
    argv = [
        str(claude),
        "-p",
        TASK,
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        "2",
        # The embedded model has 8K of context; Claude Code's own prompt and tools take 20K.
        "--tools",
        "Read,Edit",
        "--system-prompt",
        "You edit the user's files with the Edit tool.",
    ]
    env = {
        "ANTHROPIC_BASE_URL": daemon,
        "ANTHROPIC_API_KEY": "sk-local",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "1024",
    }
    run_client(argv, project, env)


def test_opencode_edits_over_chat_completions(daemon: str, project: Path) -> None:
    opencode = client_binary("opencode", "node_modules", ".bin", "opencode")
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "breakingwind": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "BreakingWind",
                "options": {"baseURL": f"{daemon}/v1"},
                "models": {"breakingwind-coder": {"name": "BreakingWind coder"}},
            }
        },
    }
    (project / "opencode.json").write_text(json.dumps(config))
    argv = [str(opencode), "run", "-m", "breakingwind/breakingwind-coder", TASK]
    run_client(argv, project, {})


def test_aider_edits_over_chat_completions(daemon: str, project: Path) -> None:
    aider = client_binary("aider", "bin", "aider")
    argv = [
        str(aider),
        "--model",
        "openai/breakingwind-coder",
        "--openai-api-base",
        f"{daemon}/v1",
        "--openai-api-key",
        "sk-local",
        "--edit-format",
        "whole",
        "--yes-always",
        "--no-git",
        "--no-check-update",
        "--no-show-model-warnings",
        "--analytics-disable",
        "--no-stream",
        "--message",
        TASK,
        "calc.py",
    ]
    run_client(argv, project, {})


def test_llm_answers_over_chat_completions(daemon: str, project: Path) -> None:
    llm = client_binary("llm", "bin", "llm")
    user_dir = project.parent / "llm"
    user_dir.mkdir()
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: breakingwind\n  model_name: breakingwind-coder\n  api_base: {daemon}/v1\n"
    )
    argv = [str(llm), "-m", "breakingwind", "-f", "calc.py", "--no-log", TASK]
    run_client(argv, project, {"LLM_USER_PATH": str(user_dir), "OPENAI_API_KEY": "sk-local"})
