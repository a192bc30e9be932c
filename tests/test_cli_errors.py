"""Errors a new user meets first, each one line (or a line per item) and never a traceback:
`serve` without its project folder, `models verify` on a fresh install, `doctor` naming the
config file it read (or that it read none). Every command is a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_config


def breakingwind(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "breakingwind", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_serve_without_its_project_folder_is_one_config_line(
    tmp_path: Path, free_port: int, clean_env: dict[str, str]
) -> None:
    config = write_config(
        tmp_path,
        f'[server]\nport = {free_port}\n[project]\nroot = "absent"\n[storage]\ndata_dir = "data"\n',
    )
    proc = breakingwind(clean_env, "--config", str(config), "serve")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"breakingwind: project.root: {tmp_path / 'absent'} is not a folder (set [project] root"
        f" in {config} or BREAKINGWIND_PROJECT_ROOT)\n"
    )


def test_models_verify_says_the_embedded_default_stands_in(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    config = write_config(tmp_path, '[engine]\nmodels_dir = "models"\n[storage]\ndata_dir = "d"\n')
    proc = breakingwind(clean_env, "--config", str(config), "models", "verify", "coder")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "coder: FAILED" in proc.stdout
    assert (
        "file is missing: the embedded default model (SmolLM2-135M) runs this agent instead"
        " until `breakingwind models pull coder` downloads it" in proc.stdout
    )


def _config_line(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    report = json.loads(proc.stdout)
    (line,) = [r for r in report["results"] if r["check"] == "config"]
    return line


def test_doctor_names_the_config_file_it_read(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = write_config(tmp_path, '[storage]\ndata_dir = "data"\n')
    proc = breakingwind(clean_env, "--config", str(config), "doctor", "--skip-live", "--json")
    assert _config_line(proc) == {
        "check": "config",
        "status": "OK",
        "detail": f"read {config}",
        "fix": None,
    }


def test_doctor_outside_the_checkout_says_no_config_was_read(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    env = {**clean_env, "BREAKINGWIND_HOME": str(tmp_path / "home")}
    proc = breakingwind(env, "doctor", "--skip-live", "--json", cwd=tmp_path)
    line = _config_line(proc)
    assert line["status"] == "WARN"
    assert line["detail"].startswith("no config file was read (./config.toml is absent here")
