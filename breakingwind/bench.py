"""`breakingwind bench`: side-by-side throughput figures, printed as ratios.

Each pair is measured in the same run on the same loaded model and the same prompt tokens: the bare
llama_decode loop and the engine's own stream (both from `breakingwind.engine.throughput`), and
`/v1/chat/completions` with `stream: true` over real HTTP on 127.0.0.1 (http). Decode speed is
measured between the first and the last token, so queueing and prefill are out.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx
import uvicorn

from breakingwind.api.app import create_app
from breakingwind.config import Settings
from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.throughput import (
    BENCH_MESSAGES,
    Run,
    bare_decode,
    engine_stream,
    machine_description,
    median_run,
)
from breakingwind.engine.worker import SamplingParams


def http_stream(url: str, agent: str, n_tokens: int, engine: Engine) -> Run:
    """One streamed chat request from a separate client process, as an IDE would send it (a
    client in this process would compete with the server for the GIL)."""
    engine.worker(agent)._llm.n_tokens = 0  # no prefix reuse: every run prefills in full
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from breakingwind.bench import client_main; client_main()",
            url,
            f"breakingwind-{agent}",
            str(n_tokens),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    figures = json.loads(out)
    return Run(
        figures["prompt_tokens"],
        figures["completion_tokens"],
        0.0,
        figures["first_to_last_s"],
        figures["ttft_s"],
    )


def client_main() -> None:
    """The client process of `http_stream`: stream one request, print timings as JSON."""
    url, model, n_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    body = {
        "model": model,
        "messages": BENCH_MESSAGES,
        "max_tokens": n_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.Client(timeout=600) as client:
        client.get(f"{url}/health")  # connect before the clock starts
        started = time.perf_counter()
        first = last = 0.0
        usage: dict = {}
        with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                now = time.perf_counter()
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    last = now
                    first = first or now
                elif chunk.get("usage"):
                    usage = chunk["usage"]
    print(json.dumps({**usage, "first_to_last_s": last - first, "ttft_s": first - started}))


def run_bench(
    settings: Settings, agent: str, n_tokens: int, repeats: int, echo: Callable[[str], None] = print
) -> dict[str, float]:
    """Measure bare vs engine vs HTTP on `agent`'s model and print the ratios."""
    engine = Engine(settings)
    engine.start()
    asyncio.run(engine.wait_ready())
    worker = engine.worker(agent)
    status = engine.status()[agent]
    echo(f"machine: {machine_description()}")
    echo(
        f"model: {worker.name} for {agent} ({status.report.backend if status.report else '?'},"
        f" n_ctx {worker.n_ctx}), {n_tokens} tokens x {repeats} runs, greedy, EOS ignored"
    )
    server = _start_server(settings, engine)
    try:
        sampling = SamplingParams(
            max_tokens=n_tokens, temperature=0, top_p=1, seed=None, grammar=None
        )
        prompt = worker.prepare(GenerationRequest(messages=BENCH_MESSAGES), sampling).tokens
        bare, engine_runs, http_runs = [], [], []
        for _ in range(repeats):  # interleaved, so drift affects all three alike
            bare.append(
                asyncio.run(worker.call_with_model(lambda llm: bare_decode(llm, prompt, n_tokens)))
            )
            engine_runs.append(asyncio.run(engine_stream(engine, agent, n_tokens)))
            http_runs.append(http_stream(server.url, agent, n_tokens, engine))
    finally:
        server.stop()
        engine.close()
    b, e, h = median_run(bare), median_run(engine_runs), median_run(http_runs)
    figures = {
        "bare_decode_tps": b.decode_tps,
        "engine_decode_tps": e.decode_tps,
        "http_decode_tps": h.decode_tps,
        "engine_vs_bare": e.decode_tps / b.decode_tps,
        "http_vs_bare": h.decode_tps / b.decode_tps,
        "bare_prefill_tps": b.prefill_tps,
        "engine_prefill_tps": e.prefill_tps,
    }
    echo(
        f"decode tok/s   bare {b.decode_tps:8.1f}   engine {e.decode_tps:8.1f}"
        f"   ratio engine/bare {figures['engine_vs_bare']:.3f}"
    )
    echo(
        f"decode tok/s   bare {b.decode_tps:8.1f}   http   {h.decode_tps:8.1f}"
        f"   ratio http/bare {figures['http_vs_bare']:.3f}"
    )
    echo(
        f"prefill tok/s  bare {b.prefill_tps:8.1f}   engine {e.prefill_tps:8.1f}"
        f"   ratio engine/bare {e.prefill_tps / b.prefill_tps:.3f}"
    )
    echo(
        f"TTFT ms        bare {b.ttft_s * 1e3:8.1f}   http   {h.ttft_s * 1e3:8.1f}"
        f"   (prompt {b.prompt_tokens} tokens)"
    )
    spread = statistics.pstdev([r.decode_tps for r in bare]) / max(b.decode_tps, 1e-9)
    echo(f"run-to-run spread of the bare decode figure: {spread:.1%}")
    return figures


class _Server:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self._server, self._thread, self.url = server, thread, url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _start_server(settings: Settings, engine: Engine) -> _Server:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return _Server(server, thread, f"http://127.0.0.1:{port}")
