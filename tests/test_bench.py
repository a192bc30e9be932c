"""`breakingwind bench --quick` (the CI smoke run) against the embedded model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from breakingwind.measure.throughput import server_completion_tokens
from tests.conftest import TEST_N_CTX, write_config

RATIO = re.compile(r"ratio (\S+) (\d+\.\d+)$")


def test_quick_bench_prints_a_parsable_ratio_for_every_pair(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    config = write_config(tmp_path, '[engine]\nmodels_dir = "models"\n')
    contexts = {
        f"BREAKINGWIND_{agent}__N_CTX": str(TEST_N_CTX)
        for agent in ("PREPROCESSOR", "PLANNER", "CODER", "REVIEWER")
    }
    out = subprocess.run(
        [sys.executable, "-m", "breakingwind", "--config", str(config), "bench", "--quick"],
        env={**clean_env, **contexts, "BREAKINGWIND_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=280,
        check=True,
    ).stdout
    lines = [line for line in out.splitlines() if "ratio" in line]
    ratios = {}
    for line in lines:
        match = RATIO.search(line)
        assert match, f"unparsable ratio line: {line!r}"
        ratios.setdefault(match.group(1), float(match.group(2)))
    assert {"engine/bare", "http/bare", "follow-up/first", "on/off", "grammar/none"} <= set(ratios)
    assert "edit-grammar/none" in ratios
    assert {"idle/empty-prefill", "idle/empty-decode"} <= set(ratios)
    assert {"1-streams/1-stream", "2-streams/1-stream", "4-streams/1-stream"} <= set(ratios)
    assert all(value > 0 for value in ratios.values())
    assert "greedy output identical: yes" in out


def test_a_peers_tokens_come_from_its_usage_then_its_timings_never_its_chunks() -> None:
    # the last chunks of a llama-server stream that put 128 tokens in 117 chunks
    both = {
        "usage": {"completion_tokens": 128, "prompt_tokens": 43},
        "timings": {"predicted_n": 128},
    }
    assert server_completion_tokens(both) == 128
    assert server_completion_tokens({"timings": {"predicted_n": 127, "predicted_ms": 800.0}}) == 127
    # a server that says neither (llama-cpp-python's): the caller tokenizes the text instead
    assert server_completion_tokens({}) is None
    assert server_completion_tokens({"usage": None, "timings": {}}) is None
