"""`breakingwind loadtest`, short and bounded, against a daemon of its own (a real
`breakingwind serve` subprocess with the embedded model). The full run and its figures are in
docs/load.md."""

from __future__ import annotations

import pytest

from breakingwind.config import AGENT_NAMES
from breakingwind.measure.loadtest import LoadPlan, render_text, run_loadtest
from breakingwind.measure.loadtest.plan import KINDS

# 8 clients for 20 s; a queue of 2 makes them meet back-pressure. Workflows are picked more
# often than in the default mix, so a short run has some. Short answers and stages keep each
# client advancing within the 20 s window even when the shared machine is busy.
PLAN = LoadPlan(
    clients=8,
    duration_s=20,
    window_s=20,
    max_tokens=16,
    mix={"chat_stream": 0.4, "completion": 0.25, "mcp_call": 0.2, "workflow": 0.15},
    workflow_stage_timeout_s=5,
    daemon_max_queue=2,
    # 13 s after warm-up cannot tell a leak from the KV cache's pages being touched for the
    # first time (a clean-clone run here grew 48 MB in 13 s: 194 MB/min); the memory promise is
    # judged by the 3-minute run (docs/load.md). Here it is measured and only grossly bounded.
    max_memory_slope_mb_per_min=120,
)
KV_CACHE_MB = 180  # the embedded model's cache at n_ctx 8192: what first use may add


def test_a_short_mixed_load_passes_every_verdict_but_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One thread per model (the daemon takes BREAKINGWIND_* settings from the environment): with
    # llama.cpp's default of 2 threads for batched steps, other processes on a 2-core machine
    # can stall every step for seconds (docs/load.md, docs/benchmarks.md).
    for agent in AGENT_NAMES:
        monkeypatch.setenv(f"BREAKINGWIND_{agent.upper()}__THREADS", "1")
    report = run_loadtest(PLAN)
    text = render_text(report)
    verdicts = {v.criterion: v.passed for v in report.verdicts}
    assert set(verdicts) == {"no unexpected 5xx", "no deadlock", "memory flat", "threads bounded"}
    assert all(passed for name, passed in verdicts.items() if name != "memory flat"), text
    assert verdicts["memory flat"] is not None, text  # measured
    assert report.daemon.growth_mb is not None and report.daemon.growth_mb < KV_CACHE_MB, text
    by_kind = {kind.kind: kind for kind in report.kinds}
    for kind in KINDS:
        assert by_kind[kind].outcomes.get("ok", 0) >= 1, f"{kind} never answered\n{text}"
    assert report.back_pressure > 0, text  # a 503 that carries Retry-After
    assert (
        report.server_5xx.get("/v1/chat/completions 503", 0)
        + report.server_5xx.get("/v1/completions 503", 0)
        == report.back_pressure
    ), text  # every 503 the daemon sent was seen with Retry-After
    assert report.unexpected_5xx == 0 and report.hung == 0 and not report.stalled, text
    assert report.daemon.sampled and report.daemon.rss_end_mb, text
    assert report.daemon_exit_code == -15 and report.daemon_log_tracebacks == 0, text
    # bounded: no request outlives the duration by more than its own timeout
    assert report.wall_s <= PLAN.duration_s + max(PLAN.timeouts_s.values()), text
