"""One load run, start to end: a project to work on, the daemon (spawned or given), the clients
and the sampler side by side for the duration, then the report."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import psutil

from breakingwind.errors import DaemonError
from breakingwind.measure.loadtest.clients import ClientResults, run_clients
from breakingwind.measure.loadtest.daemon import spawned_daemon
from breakingwind.measure.loadtest.plan import LoadPlan
from breakingwind.measure.loadtest.project import make_load_project
from breakingwind.measure.loadtest.report import LoadReport, build_report
from breakingwind.measure.loadtest.sampler import Samples, daemon_pid_listening_on, sample_daemon
from breakingwind.measure.loadtest.warmup import prime
from breakingwind.measure.throughput import machine_description

GIB = 1024**3
STATUS_EVERY_S = 10.0


def run_loadtest(
    plan: LoadPlan,
    url: str | None = None,
    pid: int | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> LoadReport:
    """Run `plan` against the daemon at `url`, or against a daemon of its own when `url` is None
    (free port, temporary data dir, embedded model; stopped with SIGTERM afterwards).

    `echo` gets a status line every 10 s. Raises `DaemonError` if the daemon is not ready."""
    with tempfile.TemporaryDirectory(prefix="breakingwind-load-") as tmp:
        folder = Path(tmp)
        project = make_load_project(folder / "project")
        if url is not None:
            pid = pid or daemon_pid_listening_on(urlsplit(url).port or 80)
            return asyncio.run(_run(plan, url.rstrip("/"), pid, project, False, echo))
        with spawned_daemon(folder, project, plan.daemon_max_queue) as daemon:
            echo(f"started the daemon at {daemon.url} (pid {daemon.pid})")
            report = asyncio.run(_run(plan, daemon.url, daemon.pid, project, True, echo))
        log = daemon.log_path.read_text(errors="replace")
        return report.model_copy(
            update={
                "daemon_exit_code": daemon.exit_code,
                "daemon_log_tracebacks": log.count("Traceback (most recent call last)"),
            }
        )


async def _run(
    plan: LoadPlan,
    url: str,
    pid: int | None,
    project: Path,
    spawned: bool,
    echo: Callable[[str], None],
) -> LoadReport:
    loop = asyncio.get_running_loop()
    async with httpx2.AsyncClient(timeout=10) as http:
        model_of_agent = await _models_by_agent(http, url)
        primed = await prime(http, url) if plan.prime else None
        if primed:
            echo(f"primed: {primed}")
        started_at, t0 = datetime.now(UTC), loop.time()
        cpu_before = _cpu_s()

        def clock() -> float:
            return loop.time() - t0

        run_over, stop = asyncio.Event(), asyncio.Event()
        samples = Samples()
        sampler = asyncio.create_task(
            sample_daemon(pid, http, url, model_of_agent, clock, stop, samples)
        )
        loop.call_later(plan.duration_s, run_over.set)
        results = ClientResults()
        clients = asyncio.create_task(run_clients(plan, url, project, clock, run_over, results))
        while not clients.done():
            await asyncio.wait((clients,), timeout=STATUS_EVERY_S)
            if not clients.done():
                echo(_status_line(clock(), results, samples))
        clients.result()
        stop.set()
        await sampler
    return build_report(
        plan,
        url,
        spawned,
        machine(),
        started_at,
        results,
        samples,
        wall_s=clock(),
        loadgen_cpu_s=_cpu_s() - cpu_before,
        primed=primed,
    )


def _cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def _models_by_agent(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """Each agent's model file, from /health (agents sharing a file share its token counter)."""
    try:
        health = (await http.get(f"{url}/health")).json()
    except (httpx2.HTTPError, ValueError) as exc:
        raise DaemonError(f"no BreakingWind daemon answers at {url}: {exc}") from None
    if health.get("status") != "ok":
        raise DaemonError(f"the daemon at {url} is {health.get('status')!r}, not ok")
    return {
        agent: str(state.get("model_file") or agent) for agent, state in health["agents"].items()
    }


def _status_line(now: float, results: ClientResults, samples: Samples) -> str:
    outcomes = Counter(sample.outcome for sample in results.samples)
    rss = f"{samples.process[-1].rss_mb:.0f} MB" if samples.process else "-"
    depth = f"{samples.metrics[-1].queue_depth:.0f}" if samples.metrics else "-"
    return (
        f"t={now:4.0f} s  requests {len(results.samples)} ({_counts(outcomes)})"
        f"  daemon RSS {rss}  queue {depth}"
    )


def _counts(outcomes: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in outcomes.most_common()) or "none yet"


def machine() -> str:
    return f"{machine_description()}, {psutil.virtual_memory().total / GIB:.1f} GiB memory"
