"""The load report as text: a table per kind of request, then the daemon's side, then verdicts."""

from __future__ import annotations

from breakingwind.measure.loadtest.report import KindFigures, LoadReport, Spread

OUTCOMES = ("ok", "backpressure", "client_error", "server_error", "hung", "transport_error", "cut")
HEADER = (
    f"{'kind':<12}{'requests':>9}{'ok':>7}{'503+RA':>8}{'4xx':>6}{'5xx':>6}{'hung':>6}"
    f"{'conn':>6}{'cut':>5}{'p50 s':>8}{'p95 s':>8}{'ttft50':>8}{'ttft95':>8}{'tok/s':>8}"
)


def render_text(report: LoadReport) -> str:
    plan = report.plan
    target = "its own daemon (embedded model)" if report.spawned else "the daemon"
    lines = [
        f"BreakingWind load run: {plan.clients} clients for {plan.duration_s:g} s"
        f" (warm-up {plan.warmup:g} s, seed {plan.seed}) against {target} at {report.url}",
        f"machine: {report.machine}; started {report.started_at:%Y-%m-%d %H:%M:%S} UTC,"
        f" {report.wall_s:g} s until the last answer",
        "mix: " + ", ".join(f"{kind} {weight:g}" for kind, weight in plan.mix.items()),
        f"before the clock: {report.primed or 'nothing (--no-prime)'}",
        "",
        HEADER,
        *(_kind_row(kind) for kind in report.kinds),
        "",
        *_details(report),
        "",
        f"back-pressure: {report.back_pressure} answers 503 with Retry-After",
        f"unexpected server errors: {report.unexpected_5xx} seen by the clients;"
        f" daemon's /metrics 5xx: {_counts(report.server_5xx)}",
        f"hung requests: {report.hung}; client windows of {plan.window_s:g} s without progress:"
        f" {len(report.stalled)}; windows in which the models generated nothing:"
        f" {_figure(report.model_stalled_windows)}",
        f"throughput: {report.client_tokens_per_s:g} tok/s answered to clients;"
        f" {_figure(report.model_tokens_per_s)} tok/s generated (/metrics, workflows included);"
        f" deepest queue {_figure(report.max_queue_depth)}",
        *_memory(report),
        *_daemon(report),
        "",
        "verdicts:",
        *(f"  {_mark(v.passed)}  {v.criterion:<18} {v.detail}" for v in report.verdicts),
        f"overall: {'PASS' if report.ok else 'FAIL'}",
    ]
    return "\n".join(lines)


def _kind_row(kind: KindFigures) -> str:
    counts = [kind.outcomes.get(outcome, 0) for outcome in OUTCOMES]
    ttft = kind.ttft_s or Spread()
    return (
        f"{kind.kind:<12}{kind.requests:>9}{counts[0]:>7}{counts[1]:>8}{counts[2]:>6}"
        f"{counts[3]:>6}{counts[4]:>6}{counts[5]:>6}{counts[6]:>5}"
        f"{_figure(kind.latency_s.p50):>8}{_figure(kind.latency_s.p95):>8}"
        f"{_figure(ttft.p50):>8}{_figure(ttft.p95):>8}{kind.tokens_per_s:>8g}"
    )


def _details(report: LoadReport) -> list[str]:
    return [f"{kind.kind}: {_counts(kind.details)}" for kind in report.kinds if kind.details]


def _memory(report: LoadReport) -> list[str]:
    memory = report.daemon
    loadgen = f"load generator CPU {report.loadgen_cpu_percent:g}% of one core"
    if not memory.sampled:
        return [f"daemon: not sampled ({memory.note}); {loadgen}"]
    return [
        f"daemon RSS: {memory.rss_start_mb} MB at start, {memory.rss_warmup_end_mb} MB at warm-up"
        f" end, {memory.rss_end_mb} MB at the end (max {memory.rss_max_mb});"
        f" {memory.growth_mb:+} MB, slope {memory.slope_mb_per_min:+} MB/min after warm-up",
        f"daemon threads: {memory.threads_start} at start, {memory.threads_warmup_max} max in"
        f" warm-up, {memory.threads_max_after_warmup} max after, {memory.threads_end} at the end",
        f"CPU: daemon {memory.cpu_percent:g}% of one core, {loadgen};"
        f" load average (1 min) mean {memory.load_avg_mean}, max {memory.load_avg_max}",
    ]


def _daemon(report: LoadReport) -> list[str]:
    if not report.spawned:
        return []
    return [
        f"daemon stopped with SIGTERM: exit {report.daemon_exit_code};"
        f" {report.daemon_log_tracebacks} tracebacks in its log"
    ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a "}[passed]
