"""The daemon with scripted models, as a process a test can SIGKILL:

    python -m tests.scripted_daemon CONFIG SCRIPT

It is `breakingwind serve` (the same `create_app`, server config, store, pipeline, workspaces and
run_tests) except that every agent's generate call is a `ScriptedModel` answering from SCRIPT, a
JSON object {agent: [answer, ...]} where an answer is a string or {"hang": true} (a generation
that never ends). Scripted models let a test stop the pipeline at a chosen stage in a second,
where the embedded model takes a minute per workflow and cannot reach the later stages on purpose.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from breakingwind.api.app import create_app
from breakingwind.api.server import server_config
from breakingwind.config import load_settings
from breakingwind.engine import Engine
from breakingwind.engine.scripted import Answer, Hang
from tests.conftest import Daemon, daemon_toml, scripted_engine, write_config


def script_engine(config: Path, script: dict[str, list[str | dict[str, bool]]]) -> Engine:
    engine, models = scripted_engine(load_settings(config))
    for agent, model in models.items():
        answers: list[Answer] = [Hang() if isinstance(a, dict) else a for a in script[agent]]
        model.enqueue(*answers)
    return engine


# --- driving it from a test ------------------------------------------------------------------

HANG = {"hang": True}


def scripted_config(tmp_path: Path, port: int, project: Path, extra: str = "") -> Path:
    """The config.toml of a scripted daemon over `project` (quick to stop, no coverage)."""
    extra = "[tools.run_tests]\ncoverage = false\n" + extra
    return write_config(tmp_path, daemon_toml(port, project, extra, "shutdown_grace_s = 5"))


def start_scripted(
    tmp_path: Path, port: int, env: dict[str, str], script: dict[str, Any]
) -> Daemon:
    config = tmp_path / "config.toml"
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    argv = [sys.executable, "-m", "tests.scripted_daemon", str(config), str(path)]
    # A kill during run_tests leaves its scratch copy behind: keep it in this test's folder.
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return Daemon(config, port, {**env, "TMPDIR": str(tmp_path / "tmp")}, argv)


def event(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == kind


def main(config: Path, script_path: Path) -> None:
    logging.basicConfig(level=logging.WARNING)
    engine = script_engine(config, json.loads(script_path.read_text()))
    settings = engine.settings
    uvicorn.Server(server_config(create_app(settings, engine), settings.server)).run()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
