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
from pathlib import Path

import uvicorn

from breakingwind.api.app import create_app
from breakingwind.api.server import server_config
from breakingwind.config import load_settings
from breakingwind.engine import Engine
from breakingwind.engine.scripted import Answer, Hang, ScriptedModel


def scripted_engine(config: Path, script: dict[str, list[str | dict[str, bool]]]) -> Engine:
    engine = Engine(load_settings(config))  # never started: nothing is loaded
    for agent in engine.agents:
        model = ScriptedModel(agent)
        answers: list[Answer] = [Hang() if isinstance(a, dict) else a for a in script[agent]]
        model.enqueue(*answers)
        engine.replace_model(agent, model)
    return engine


def main(config: Path, script_path: Path) -> None:
    logging.basicConfig(level=logging.WARNING)
    engine = scripted_engine(config, json.loads(script_path.read_text()))
    settings = engine.settings
    uvicorn.Server(server_config(create_app(settings, engine), settings.server)).run()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
