"""`breakingwind bench`: side-by-side throughput figures, printed as ratios.

Each pair is measured in the same run on the same loaded model and the same prompt tokens:
- bare: prefill, then a plain sample + llama_decode loop on the owner thread — no streaming, no
  detokenisation, no stop checks; the ceiling any serving path can reach;
- engine: the engine's own generation loop, streamed to an asyncio consumer;
- http: `/v1/chat/completions` with `stream: true` over real HTTP on 127.0.0.1.
Decode speed is measured between the first and the last token, so queueing and prefill are out.

Then, on the same model: 1, 2, 4 and 8 simultaneous HTTP chat streams (continuous batching) vs one
stream; a follow-up turn's time to first token vs the first turn's (prefix reuse); one generation
with three other slots' prompts cached vs with an empty cache (idle slots); decoding an edit
with prompt-lookup speculative decoding vs without; the coder's edit grammars vs unconstrained
decoding (`edit_grammar.py`); and memory against the budget. With `--peers`,
the same streams go, interleaved, to llama-cpp-python's server and llama.cpp's llama-server on the
same model file (`peers.py`); with `--pipeline N`, whole workflows one at a time and N at
once (`pipeline_bench.py`). Every pair is printed on one line ending `ratio <what> <value>`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx2
import psutil
import uvicorn

from breakingwind.api.app import create_app
from breakingwind.config import Settings
from breakingwind.engine import Engine, GenerationRequest
from breakingwind.engine.types import SamplingParams
from breakingwind.engine.worker import ModelWorker, eog_tokens
from breakingwind.measure.edit_grammar import edit_grammar_cost
from breakingwind.measure.peers import (
    PeerUnavailable,
    ServingSettings,
    Target,
    free_port,
    llama_cpp_python_server,
    llama_server,
)
from breakingwind.measure.pipeline_bench import pipeline_load
from breakingwind.measure.throughput import (
    BENCH_MESSAGES,
    Run,
    bare_decode,
    engine_stream,
    gpu_memory_used,
    machine_description,
    median_run,
    server_completion_tokens,
)

EDIT_SAMPLE = Path(__file__).with_name("data") / "edit_sample.py.txt"
GIB = 1024**3


def http_stream(url: str, agent: str, n_tokens: int, engine: Engine) -> Run:
    """One streamed chat request from a separate client process, as an IDE would send it (a
    client in this process would compete with the server for the GIL)."""
    asyncio.run(_worker(engine, agent).clear_cache())  # no prefix reuse: full prefills
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from breakingwind.measure.bench import client_main; client_main()",
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
        _counted(figures, _tokenizer(engine, agent)),
        0.0,
        figures["first_to_last_s"],
        figures["ttft_s"],
    )


def _chat_body(model: str, messages: list[dict], n_tokens: int, **extra: object) -> dict:
    return {
        "model": model,
        "messages": messages,
        "max_tokens": n_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }


def _stream_chat(client: httpx2.Client, url: str, body: dict) -> dict[str, float]:
    """Send one streamed chat request; its usage and timings (perf_counter seconds)."""
    started = time.perf_counter()
    first = last = 0.0
    final: dict = {}  # usage and timings, from whichever chunks carry them
    parts: list[str] = []
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            now = time.perf_counter()
            chunk = json.loads(line[6:])
            content = chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None
            if content:
                last = now
                first = first or now
                parts.append(content)
            final |= {key: chunk[key] for key in ("usage", "timings") if chunk.get(key)}
    text = "".join(parts)
    return {
        **final.get("usage", {}),
        # tokens as the server counted them; None when it did not say (llama-cpp-python's
        # server): the caller tokenizes the text then. Never the number of chunks.
        "completion_tokens": server_completion_tokens(final),
        "text": text,
        "ttft_s": first - started,
        "first_to_last_s": last - first,
        "started": started,
        "ended": last,
    }


def _tokenizer(engine: Engine, agent: str) -> Callable[[str], int]:
    """How many tokens a text is in `agent`'s vocabulary (for a server that does not say)."""
    worker = _worker(engine, agent)

    def count(text: str) -> int:
        return len(worker.tokenize(text))

    return count


def _counted(row: dict, tokenize: Callable[[str], int]) -> int:
    """A stream's generated tokens: as the server counted them, else its text tokenized."""
    counted = row["completion_tokens"]
    return counted if counted is not None else tokenize(row["text"])


def client_main() -> None:
    """The client process of `http_stream`: stream one request, print timings as JSON."""
    url, model, n_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with httpx2.Client(timeout=600) as client:
        client.get(f"{url}/health")  # connect before the clock starts
        print(json.dumps(_stream_chat(client, url, _chat_body(model, BENCH_MESSAGES, n_tokens))))


def _worker(engine: Engine, agent: str) -> ModelWorker:
    worker = engine.worker(agent)
    assert isinstance(worker, ModelWorker), "bench measures the in-process engine"
    return worker


@dataclass(frozen=True)
class BenchPlan:
    n_tokens: int  # per run of the bare/engine/HTTP pair and of the edit
    repeats: int
    stream_levels: tuple[int, ...] = (1, 2, 4, 8)
    stream_tokens: int = 128
    draft_tokens: int = 8
    parallel: int | None = None  # slots of the measured model (None: the most streams)
    peers: bool = False  # also load llama-cpp-python's server and llama-server alike
    llama_server: Path | None = None  # the llama-server binary (None: that peer is skipped)
    pipeline_tasks: int = 0  # whole workflows: 1 at a time, then this many at once (0: skip)


def run_bench(
    settings: Settings, agent: str, plan: BenchPlan, echo: Callable[[str], None] = print
) -> dict[str, float]:
    """Measure `agent`'s model side by side (see the module docstring) and print the ratios."""
    parallel = plan.parallel or max(plan.stream_levels)
    # every agent, since agents sharing a model file get the largest of their slot counts
    slots = {
        name: section.model_copy(update={"n_parallel": parallel})
        for name, section in settings.agents().items()
    }
    settings = settings.model_copy(update=slots)
    engine = Engine(settings)
    engine.start()
    asyncio.run(engine.wait_ready())
    worker = _worker(engine, agent)
    status = engine.status()[agent]
    echo(f"machine: {machine_description()}")
    echo(
        f"model: {worker.name} for {agent} ({status.report.backend if status.report else '?'},"
        f" n_ctx {worker.n_ctx}, {worker.n_parallel} slots), {plan.n_tokens} tokens x"
        f" {plan.repeats} runs, greedy, EOS ignored"
    )
    server = _start_server(settings, engine)
    figures: dict[str, float] = {}
    try:
        figures |= _bare_engine_http(engine, agent, server.url, plan, echo)
        ours = Target("breakingwind", server.url, f"breakingwind-{agent}")
        with ExitStack() as peers:
            targets = [ours, *_start_peers(peers, worker, plan, echo)] if plan.peers else [ours]
            figures |= _concurrent_streams(engine, agent, targets, plan, echo)
        figures |= asyncio.run(_prefix_reuse(engine, agent, plan, echo))
        figures |= asyncio.run(_idle_slots(engine, agent, plan, echo))
        figures |= asyncio.run(_speculative(engine, agent, plan, echo))
        figures |= asyncio.run(edit_grammar_cost(engine, agent, plan.repeats, echo))
        figures |= _memory(engine, settings, echo)
        if plan.pipeline_tasks:
            levels = tuple(sorted({1, plan.pipeline_tasks}))
            figures |= asyncio.run(pipeline_load(settings, engine, levels, echo))
    finally:
        server.stop()
        engine.close()
    return figures


def _bare_engine_http(
    engine: Engine, agent: str, url: str, plan: BenchPlan, echo: Callable[[str], None]
) -> dict[str, float]:
    worker = _worker(engine, agent)
    n_tokens = plan.n_tokens
    sampling = SamplingParams(max_tokens=n_tokens, temperature=0, top_p=1, seed=None, grammar=None)
    prompt = worker.prepare(GenerationRequest(messages=BENCH_MESSAGES), sampling).tokens
    bare, engine_runs, http_runs = [], [], []
    for _ in range(plan.repeats):  # interleaved, so drift affects all three alike
        bare.append(
            asyncio.run(worker.call_with_model(lambda llm: bare_decode(llm, prompt, n_tokens)))
        )
        engine_runs.append(asyncio.run(engine_stream(engine, agent, n_tokens)))
        http_runs.append(http_stream(url, agent, n_tokens, engine))
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


# --- concurrent streams ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRun:
    """N simultaneous streams: per-stream figures and the aggregate."""

    streams: int
    tokens: int  # generated by all streams
    wall_s: float  # first request sent to last token received
    per_stream_tps: list[float]
    ttfts_s: list[float]

    @property
    def aggregate_tps(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


def _start_peers(
    stack: ExitStack, worker: ModelWorker, plan: BenchPlan, echo: Callable[[str], None]
) -> list[Target]:
    """Start the peers on our model file with our worker's settings; skip (and say) any that
    cannot start."""
    threads, threads_batch = asyncio.run(
        worker.call_with_model(
            lambda llm: (llm.context_params.n_threads, llm.context_params.n_threads_batch)
        )
    )
    serving = ServingSettings(
        model_path=worker.spec.path,
        n_ctx=worker.n_ctx,
        slots=worker.n_parallel,
        threads=threads,
        threads_batch=threads_batch,
        n_batch=worker.spec.n_batch,
        n_gpu_layers=worker.spec.n_gpu_layers,
        flash_attn=worker.report.flash_attn if worker.report else "off",
    )
    targets = []
    for name, start in (
        ("llama-cpp-python", lambda: llama_cpp_python_server(serving)),
        ("llama-server", lambda: llama_server(plan.llama_server, serving)),
    ):
        try:
            targets.append(stack.enter_context(start()))
        except PeerUnavailable as exc:
            echo(f"peer {name}: skipped, {exc}")
    if targets:
        echo(
            f"peers: {', '.join(t.name for t in targets)} on the same file, n_ctx {serving.n_ctx},"
            f" {serving.slots} slots (llama-server), threads {threads}/{threads_batch},"
            f" n_batch {serving.n_batch}, flash attention {serving.flash_attn}"
        )
    return targets


@dataclass
class _Level:
    runs: list[LoadRun] = field(default_factory=list)

    @property
    def aggregate(self) -> float:
        return _median(r.aggregate_tps for r in self.runs)

    @property
    def per_stream(self) -> float:
        return _median(t for r in self.runs for t in r.per_stream_tps)

    @property
    def ttfts(self) -> list[float]:
        return sorted(t for r in self.runs for t in r.ttfts_s)


def _concurrent_streams(
    engine: Engine,
    agent: str,
    targets: list[Target],
    plan: BenchPlan,
    echo: Callable[[str], None],
) -> dict[str, float]:
    """N simultaneous streams against each target; the first target is ours."""
    eog = asyncio.run(_worker(engine, agent).call_with_model(eog_tokens))
    tokenize = _tokenizer(engine, agent)
    levels = {(t.name, n): _Level() for t in targets for n in plan.stream_levels}
    for repeat in range(plan.repeats):  # levels and servers interleaved: drift affects all alike
        for n in plan.stream_levels:
            for target in targets:
                asyncio.run(_worker(engine, agent).clear_cache())
                run = _load_run(target, plan.stream_tokens, n, repeat, eog, tokenize)
                levels[target.name, n].runs.append(run)
    ours = targets[0].name
    figures: dict[str, float] = {}
    base = levels[ours, plan.stream_levels[0]].aggregate
    for n in plan.stream_levels:
        level = levels[ours, n]
        spread = max(r.aggregate_tps for r in level.runs) - min(r.aggregate_tps for r in level.runs)
        figures[f"streams_{n}_aggregate_tps"] = level.aggregate
        figures[f"streams_{n}_vs_1"] = level.aggregate / base
        echo(
            f"{n} streams  aggregate {level.aggregate:7.1f} tok/s (spread {spread:.1f})  per-stream"
            f" {level.per_stream:6.1f} tok/s  TTFT p50 {_percentile(level.ttfts, 50) * 1e3:7.1f} ms"
            f"  p95 {_percentile(level.ttfts, 95) * 1e3:7.1f} ms"
            f"   ratio {n}-streams/1-stream {level.aggregate / base:.2f}"
        )
    for peer in targets[1:]:
        figures |= _peer_lines(levels, ours, peer.name, plan.stream_levels, echo)
    return figures


def _peer_lines(
    levels: dict[tuple[str, int], _Level],
    ours: str,
    peer: str,
    stream_levels: tuple[int, ...],
    echo: Callable[[str], None],
) -> dict[str, float]:
    figures: dict[str, float] = {}
    base = levels[peer, stream_levels[0]].aggregate
    for n in stream_levels:
        mine, theirs = levels[ours, n], levels[peer, n]
        ratio = mine.aggregate / theirs.aggregate if theirs.aggregate else 0.0
        figures[f"vs_{peer}_{n}_streams"] = ratio
        echo(
            f"{peer:<16} {n} streams  aggregate {theirs.aggregate:7.1f} tok/s"
            f" ({theirs.aggregate / base:.2f}x its 1 stream)  per-stream"
            f" {theirs.per_stream:6.1f}  TTFT p50"
            f" {_percentile(theirs.ttfts, 50) * 1e3:7.1f} ms  p95"
            f" {_percentile(theirs.ttfts, 95) * 1e3:7.1f} ms  | {ours} {mine.aggregate:7.1f} tok/s"
            f"   ratio {ours}/{peer} {ratio:.2f}"
        )
    return figures


def _load_run(
    target: Target,
    n_tokens: int,
    streams: int,
    repeat: int,
    eog: list[int],
    tokenize: Callable[[str], int],
) -> LoadRun:
    """`streams` simultaneous chat streams from a separate client process (see `http_stream`);
    tokens as each server counted them (`_counted`)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from breakingwind.measure.bench import load_client_main; load_client_main()",
            target.url,
            target.model,
            str(n_tokens),
            str(streams),
            str(repeat),
            json.dumps(eog),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    rows = json.loads(out)
    for row in rows:
        row["completion_tokens"] = _counted(row, tokenize)
    started = min(row["started"] for row in rows)
    ended = max(row["ended"] for row in rows)
    return LoadRun(
        streams=streams,
        tokens=sum(row["completion_tokens"] for row in rows),
        wall_s=ended - started,
        per_stream_tps=[
            (row["completion_tokens"] - 1) / row["first_to_last_s"]
            for row in rows
            if row["first_to_last_s"] > 0
        ],
        ttfts_s=[row["ttft_s"] for row in rows],
    )


def load_client_main() -> None:
    """The client process of `_load_run`: N streams at once, one JSON row each."""
    url, model, n_tokens, streams, repeat = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    # exactly n_tokens from every server: `ignore_eos` (ours, llama-server) and a logit bias that
    # rules out end-of-generation tokens (llama-cpp-python's server has no `ignore_eos`)
    no_eos = dict.fromkeys(map(str, json.loads(sys.argv[6])), -100)

    def one(index: int, client: httpx2.Client) -> dict[str, float]:
        messages = [
            BENCH_MESSAGES[0],
            {**BENCH_MESSAGES[1], "content": f"{BENCH_MESSAGES[1]['content']} (#{repeat}.{index})"},
        ]
        return _stream_chat(client, url, _chat_body(model, messages, n_tokens, logit_bias=no_eos))

    clients = [httpx2.Client(timeout=900) for _ in range(streams)]
    for client in clients:
        client.get(f"{url}/health")  # connect before the clock starts
    with ThreadPoolExecutor(streams) as pool:
        rows = list(pool.map(one, range(streams), clients))
    for client in clients:
        client.close()
    print(json.dumps(rows))


def _median(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.median(items) if items else 0.0


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# --- prefix reuse, speculative decoding, memory ------------------------------------------------


async def _ttft(engine: Engine, agent: str, request: GenerationRequest) -> tuple[float, str]:
    started = time.perf_counter()
    stream = await engine.stream(agent, request)
    first = 0.0
    parts = []
    async for delta in stream:
        first = first or time.perf_counter()
        parts.append(delta)
    return first - started, "".join(parts)


async def _prefix_reuse(
    engine: Engine, agent: str, plan: BenchPlan, echo: Callable[[str], None]
) -> dict[str, float]:
    """An IDE's second turn: same system prompt and file, the answer, one more question."""
    source = EDIT_SAMPLE.read_text()
    turn = [
        {"role": "system", "content": "You are a careful senior software engineer."},
        {"role": "user", "content": f"inventory.py:\n```python\n{source}```\nWhat does merge do?"},
    ]
    firsts, follow_ups = [], []
    for _ in range(plan.repeats):
        await _worker(engine, agent).clear_cache()
        first_s, answer = await _ttft(
            engine, agent, GenerationRequest(messages=turn, max_tokens=32, temperature=0)
        )
        follow = [*turn, {"role": "assistant", "content": answer}]
        follow.append({"role": "user", "content": "And what does low_stock return?"})
        follow_s, _ = await _ttft(
            engine, agent, GenerationRequest(messages=follow, max_tokens=32, temperature=0)
        )
        firsts.append(first_s)
        follow_ups.append(follow_s)
    first, follow_up = _median(firsts), _median(follow_ups)
    echo(
        f"prefix reuse   TTFT first turn {first * 1e3:7.1f} ms   follow-up {follow_up * 1e3:7.1f}"
        f" ms   ratio follow-up/first {follow_up / first:.3f}"
    )
    return {
        "ttft_first_s": first,
        "ttft_follow_up_s": follow_up,
        "follow_up_vs_first": follow_up / first,
    }


async def _idle_slots(
    engine: Engine, agent: str, plan: BenchPlan, echo: Callable[[str], None]
) -> dict[str, float]:
    """One generation with an empty cache vs with three other slots keeping their prompts cached
    (as a pipeline's agents leave them): prefill and decode speed, interleaved."""
    worker = _worker(engine, agent)
    words = max(worker.n_ctx // 24, 16)  # four prompts and the answer fit in the context

    def request(label: str, n_tokens: int) -> GenerationRequest:
        text = f"{label}: " + " ".join(f"{label}{i}" for i in range(words))
        return GenerationRequest(
            messages=[{"role": "user", "content": text}],
            max_tokens=n_tokens,
            temperature=0,
            ignore_eos=True,
        )

    speeds: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    cells = 0
    for _ in range(plan.repeats):
        for idle in (False, True):
            await worker.clear_cache()
            if idle:
                kept = [await engine.complete(agent, request(n, 1)) for n in ("ab", "cd", "ef")]
                cells = sum(k.usage.prompt_tokens + 1 for k in kept)
            result = await engine.complete(agent, request("item", plan.n_tokens))
            prefill, decode = speeds[idle]
            prefill.append(result.usage.prompt_tokens / result.timings.prefill_s)
            decode.append(result.decode_tokens_per_s)
    await worker.clear_cache()
    (empty_p, empty_d), (idle_p, idle_d) = (
        (_median(speeds[idle][0]), _median(speeds[idle][1])) for idle in (False, True)
    )
    flash = worker.report.flash_attn if worker.report else "?"
    echo(f"idle slots: 3 slots keep {cells} cells cached, flash attention {flash}")
    echo(
        f"idle slots  prefill tok/s empty cache {empty_p:7.1f}  3 idle slots {idle_p:7.1f}"
        f"   ratio idle/empty-prefill {idle_p / empty_p:.2f}"
    )
    echo(
        f"idle slots  decode tok/s  empty cache {empty_d:7.1f}  3 idle slots {idle_d:7.1f}"
        f"   ratio idle/empty-decode {idle_d / empty_d:.2f}"
    )
    return {
        "idle_prefill_ratio": idle_p / empty_p,
        "idle_decode_ratio": idle_d / empty_d,
    }


async def _speculative(
    engine: Engine, agent: str, plan: BenchPlan, echo: Callable[[str], None]
) -> dict[str, float]:
    """Rewrite a 60-line file with type hints, greedy, with and without prompt-lookup drafts."""
    worker = _worker(engine, agent)
    request = GenerationRequest(
        messages=[
            {
                "role": "user",
                "content": "Rewrite this Python file with type hints on every function and"
                f" method. Reply with the whole file.\n```python\n{EDIT_SAMPLE.read_text()}```",
            }
        ]
    )
    sampling = SamplingParams(
        max_tokens=plan.n_tokens, temperature=0, top_p=1, seed=None, grammar=None
    )
    prepared = await asyncio.to_thread(worker.prepare, request, sampling)
    speeds: dict[int, list[float]] = {0: [], plan.draft_tokens: []}
    texts: dict[int, str] = {}
    drafted = accepted = 0
    for _ in range(plan.repeats):
        for draft in speeds:
            job = replace(prepared, sampling=replace(sampling, draft_tokens=draft))
            before = worker.tokens_drafted, worker.drafts_accepted
            result = await worker.submit(job).collect()
            drafted += worker.tokens_drafted - before[0]
            accepted += worker.drafts_accepted - before[1]
            speeds[draft].append(result.decode_tokens_per_s)
            texts[draft] = result.text
    off, on = _median(speeds[0]), _median(speeds[plan.draft_tokens])
    same = texts[0] == texts[plan.draft_tokens]
    echo(
        f"speculative decoding (prompt lookup, draft {plan.draft_tokens}): decode tok/s off"
        f" {off:7.1f}  on {on:7.1f}  accepted {accepted}/{drafted} drafted"
        f"  greedy output identical: {'yes' if same else 'NO'}   ratio on/off {on / off:.2f}"
    )
    return {
        "spec_off_tps": off,
        "spec_on_tps": on,
        "spec_speedup": on / off,
        "spec_same": float(same),
    }


def _memory(engine: Engine, settings: Settings, echo: Callable[[str], None]) -> dict[str, float]:
    figures: dict[str, float] = {}
    seen = set()
    for agent in engine.agents:
        worker = engine.worker(agent)
        if id(worker) in seen or worker.report is None:
            continue
        seen.add(id(worker))
        report = worker.report
        echo(
            f"memory: {worker.name}: weights {report.weights_bytes / GIB:.2f} GiB + KV cache"
            f" {report.kv_cache_bytes / GIB:.2f} GiB (n_ctx {report.n_ctx}); RSS grew"
            f" {report.rss_delta_bytes / GIB:.2f} GiB when it loaded"
        )
    vram = gpu_memory_used()
    if vram is not None:
        figures["gpu_memory_gib"] = vram / GIB
        echo(f"memory: GPU memory in use {vram / GIB:.2f} GiB (nvidia-smi, every process)")
    rss = psutil.Process().memory_info().rss
    figures["rss_gib"] = rss / GIB
    budget = settings.engine.memory_budget_gb
    if budget is None:
        echo(f"memory: process RSS {rss / GIB:.2f} GiB (no engine.memory_budget_gb set)")
    else:
        figures["rss_vs_budget"] = rss / GIB / budget
        echo(
            f"memory: process RSS {rss / GIB:.2f} GiB, budget {budget:.2f} GiB"
            f"   ratio rss/budget {rss / GIB / budget:.3f}"
        )
    return figures


class _Server:
    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self._server, self._thread, self.url = server, thread, url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _start_server(settings: Settings, engine: Engine) -> _Server:
    port = free_port()
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
