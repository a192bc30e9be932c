"""What the daemon looks like during a run: its RSS and thread count (psutil, once a second),
the machine's load average, and its own /metrics (queue depth, generated tokens, responses)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
import psutil
from prometheus_client.parser import text_string_to_metric_families

MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessSample:
    at_s: float  # seconds since the run started
    rss_mb: float
    threads: int
    cpu_s: float  # user + system time of the daemon so far
    load_1m: float


@dataclass(frozen=True)
class MetricsSample:
    at_s: float
    generated_tokens: float  # summed over distinct model files
    queue_depth: float  # the deepest queue of any agent
    responses: dict[tuple[str, str], float]  # (path, status) -> count


@dataclass
class Samples:
    process: list[ProcessSample] = field(default_factory=list)
    metrics: list[MetricsSample] = field(default_factory=list)
    process_error: str | None = None  # why the process could not be sampled


def daemon_pid_listening_on(port: int) -> int | None:
    """The pid of the process listening on 127.0.0.1:`port`, if this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def parse_metrics(text: str, model_of_agent: dict[str, str], at_s: float) -> MetricsSample:
    """The figures a load run needs from a /metrics scrape.

    A model shared by several agents reports its tokens under each of them: count each model
    file once (`model_of_agent`, from /health)."""
    tokens_by_model: dict[str, float] = {}
    depth = 0.0
    responses: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "breakingwind_model_generated_tokens_total":
                model = model_of_agent.get(labels["agent"], labels["agent"])
                tokens_by_model[model] = sample.value
            elif sample.name == "breakingwind_model_queue_depth":
                depth = max(depth, sample.value)
            elif sample.name == "breakingwind_http_requests_total":
                responses[(labels["path"], labels["status"])] = sample.value
    return MetricsSample(at_s, sum(tokens_by_model.values()), depth, responses)


async def sample_daemon(
    pid: int | None,
    http: httpx2.AsyncClient,
    url: str,
    model_of_agent: dict[str, str],
    clock: Callable[[], float],
    stop: asyncio.Event,
    samples: Samples,
    metrics_every_s: float = 5.0,
) -> None:
    """Sample the process every second and /metrics every `metrics_every_s` until `stop`."""
    process = _process(pid, samples)
    next_scrape = 0.0
    while True:
        now = clock()
        if process is not None:
            try:
                with process.oneshot():
                    rss, threads, cpu = (
                        process.memory_info().rss,
                        process.num_threads(),
                        process.cpu_times(),
                    )
                samples.process.append(
                    ProcessSample(now, rss / MB, threads, cpu.user + cpu.system, os.getloadavg()[0])
                )
            except psutil.Error as exc:
                samples.process_error = f"the daemon process went away: {exc}"
                process = None
        if now >= next_scrape or stop.is_set():
            next_scrape = now + metrics_every_s
            await _scrape(http, url, model_of_agent, now, samples)
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass


def _process(pid: int | None, samples: Samples) -> psutil.Process | None:
    if pid is None:
        samples.process_error = "no daemon pid (pass --pid): memory and threads not sampled"
        return None
    try:
        return psutil.Process(pid)
    except psutil.Error as exc:
        samples.process_error = f"cannot watch pid {pid}: {exc}"
        return None


async def _scrape(
    http: httpx2.AsyncClient,
    url: str,
    model_of_agent: dict[str, str],
    at_s: float,
    samples: Samples,
) -> None:
    try:
        response = await http.get(f"{url}/metrics", timeout=10)
    except httpx2.HTTPError:
        return  # a missed scrape shows as a gap; the clients report the errors
    if response.status_code == 200:
        samples.metrics.append(parse_metrics(response.text, model_of_agent, at_s))
