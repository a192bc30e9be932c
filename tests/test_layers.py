"""Imports point inward: the task model and the engine's shared types load no inference runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running `statement`."""
    listing = "print(' '.join({m.split('.')[0] for m in sys.modules}))"
    code = f"{statement}\nimport sys\n{listing}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import breakingwind.tasks, breakingwind.store",
        "import breakingwind.engine.types, breakingwind.engine.stream",
        "import breakingwind.engine.remote, breakingwind.engine.scripted",
    ],
)
def test_import_loads_no_llama_cpp(statement: str) -> None:
    loaded = _loaded_after(statement)
    assert "breakingwind" in loaded
    assert "llama_cpp" not in loaded


def test_engine_import_does_load_llama_cpp() -> None:
    """The check above can fail: importing the engine itself does load the runtime."""
    assert "llama_cpp" in _loaded_after("from breakingwind.engine import Engine")
