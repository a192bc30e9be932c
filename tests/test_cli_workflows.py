"""`breakingwind run` and `breakingwind eval` as a user runs them (subprocesses, real model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import daemon_config
from tests.pipeline_fixtures import CALC, TASK, make_project


def test_run_prints_progress_and_the_outcome(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    config = daemon_config(tmp_path, project, free_port)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "breakingwind",
            "--config",
            str(config),
            "run",
            TASK,
            "--project",
            str(project),
            "--local",
            "--cycles",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env,
    )
    assert "▶ preprocess" in proc.stdout and "▶ plan" in proc.stdout
    # Typed text passes the preprocessor without a model call, and the run says so; each model
    # call says how much it reads first; each stage ends with its agents' figures.
    assert "(preprocess: typed text only: passed through as written" in proc.stdout
    assert re.search(r"^  planner is reading [\d,]+ tokens…$", proc.stdout, re.M)
    assert re.search(r"^  planner: \d+ tokens, [\d.]+ tok/s; plan took", proc.stdout, re.M)
    assert re.search(
        r"^Outcome: (approved|failed) after .* \(task [0-9a-f]{16}\)$", proc.stdout, re.M
    )
    assert re.search(r"\(task [0-9a-f]{16}\)", proc.stdout)
    assert "llama_context:" not in proc.stderr  # llama.cpp's load chatter is not a warning
    assert proc.returncode == (0 if "Outcome: approved" in proc.stdout else 1)
    assert (project / "calc.py").read_text() == CALC  # no --apply, no change
    assert "Traceback" not in proc.stderr


def test_eval_reports_solved_over_total(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "project")
    config = daemon_config(tmp_path, project, free_port)
    proc = subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "eval", "--limit", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"^task 1/1 calc_add: (SOLVED|not solved) \(\w+, [\d.]+s, edits \d+/\d+, tests"
        r" (run|never run), \d+ reviews\)",
        proc.stdout,
        re.M,
    )
    assert re.search(
        r"^solved [01]/1, reached tests [01]/1, reviewed [01]/1, edits applied \S+.*"
        r" review cycles per task, [\d.]+s per task",
        proc.stdout,
        re.M,
    )
    # Its tasks went to a store of its own: a daemon started later resumes none of them.
    assert (tmp_path / "data" / "eval" / "breakingwind.sqlite3").is_file()
    assert not (tmp_path / "data" / "breakingwind.sqlite3").exists()
