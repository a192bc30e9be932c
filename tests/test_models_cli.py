"""`breakingwind models list`: resolved files, presence, size, sharing, fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_config


def models_list(config: Path, env: dict[str, str]) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "models", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    return json.loads(proc.stdout)


def test_missing_files_fall_back_and_share_the_embedded_model(
    tmp_path: Path, clean_env: dict[str, str], embedded_gguf: Path
) -> None:
    rows = {r["agent"]: r for r in models_list(write_config(tmp_path, ""), clean_env)}
    assert set(rows) == {"preprocessor", "planner", "coder", "reviewer"}
    coder = rows["coder"]
    assert coder["embedded_default"] is True and coder["present"] is True
    assert coder["file"] == str(embedded_gguf)
    assert coder["configured"].endswith("Devstral-Small-2507-Q6_K.gguf")
    assert coder["size_bytes"] == embedded_gguf.stat().st_size
    assert coder["n_ctx"] == 8192  # capped at the embedded model's training context
    assert sorted(coder["shared_with"]) == ["planner", "preprocessor", "reviewer"]


def test_a_present_file_is_used_and_not_shared(
    tmp_path: Path, clean_env: dict[str, str], model_copy: Path
) -> None:
    config = write_config(
        tmp_path, f'[engine]\nmodels_dir = "models"\n[coder]\nmodel = "{model_copy.name}"\n'
    )
    rows = {r["agent"]: r for r in models_list(config, clean_env)}
    assert rows["coder"]["embedded_default"] is False
    assert rows["coder"]["file"] == str(model_copy)
    assert rows["coder"]["shared_with"] == []
    assert "coder" not in rows["planner"]["shared_with"]


def test_table_output_names_the_missing_file(tmp_path: Path, clean_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "breakingwind",
            "--config",
            str(write_config(tmp_path, "")),
            "models",
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env,
        check=True,
    )
    assert "embedded default (configured" in proc.stdout
    assert "Qwen3-Coder-30B-A3B-Instruct-Q6_K.gguf is missing" in proc.stdout
