"""Engine-level benchmark of the full profile's four model shapes on one machine.

    PYTHONPATH=/tmp/site:. python3 scripts/gpu_bench.py --models /tmp/gguf --out gpu_bench.json
    PYTHONPATH=/tmp/site:. python3 scripts/gpu_bench.py --models /tmp/gguf --agent coder \
        --out coder.json --llama-server /tmp/llbuild/bin/llama-server   # one model, + the peer
    .venv/bin/python scripts/gpu_bench.py --tiny --models /tmp/tiny --out tiny.json  # CPU check

Loads the four random-weight GGUFs of scripts/random_gguf.py as the four agents of ONE `Engine`
(n_gpu_layers -1) and reports:
- per agent: the load report; decode tok/s of the engine's own streamed generation vs the bare
  llama_decode loop; the memory-bandwidth ceiling (bytes of weights read per token, only the active
  experts of a MoE, into the measured memory bandwidth) and both figures as fractions of it;
- memory: GPU memory used (nvidia-smi) and process RSS vs the sum of the engine's estimates;
- 1, 2, 4 and 8 concurrent streams on the planner's model (or --agent's): aggregate tok/s and
  ratio to one stream; with --llama-server, the same streams sent to llama.cpp's llama-server on
  the same file (HTTP, `-np 8`, the same context), and our aggregate against its.
With --agent only that model is loaded (every agent pointed at its file), so that one model's
failure cannot take the others' figures with it.
Each pair is printed on a line with `ratio`. All figures go to --out as JSON, rewritten after every
stage, so a run cut short keeps what it measured. Only what `breakingwind.engine` needs is imported
(llama_cpp, numpy, psutil, pydantic, jinja2, gguf), for machines without a package registry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil
from bandwidth import device_bandwidth, host_bandwidth
from random_gguf import SHAPES, file_name

from breakingwind.config import Settings, load_settings
from breakingwind.engine import Engine, GenerationRequest, compiled_backend
from breakingwind.engine.gguf_file import read_gguf_header
from breakingwind.engine.types import PreparedRequest, SamplingParams
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

CONCURRENCY_AGENT = "planner"
STREAMS = (1, 2, 4, 8)
AGENT_TEMPERATURE = 0.2  # config.toml's default (with top_p 0.95)


@dataclass(frozen=True)
class Profile:
    """How long and how large the run is."""

    scale: str
    n_ctx: int
    tokens: int
    repeats: int
    stream_tokens: int
    streams: tuple[int, ...]


PROFILES = {
    "full": Profile("full", n_ctx=16384, tokens=128, repeats=3, stream_tokens=128, streams=STREAMS),
    "tiny": Profile("tiny", n_ctx=2048, tokens=32, repeats=2, stream_tokens=32, streams=STREAMS),
}


# --- model files ---------------------------------------------------------------------------


def bytes_read_per_token(path: Path) -> int:
    """Bytes of weights one decoded token reads: every tensor except the embedding table (one row
    is gathered) unless it doubles as the output matrix; of the expert tensors only the share of
    the experts used per token."""
    header = read_gguf_header(path)  # the engine's own parser: no tokenizer arrays decoded
    arch = header.fields["general.architecture"]
    expert_count = header.fields.get(f"{arch}.expert_count")
    expert_used = header.fields.get(f"{arch}.expert_used_count")
    share = expert_used / expert_count if isinstance(expert_count, int) and expert_count else 1.0
    names = {tensor.name for tensor in header.tensors}
    total = 0.0
    for tensor in header.tensors:
        if tensor.name == "token_embd.weight" and "output.weight" in names:
            continue
        total += tensor.n_bytes * (share if "_exps." in tensor.name else 1.0)
    return int(total)


def bench_settings(
    models: dict[str, Path], n_ctx: int, slots: int, flash_attn: str = "auto"
) -> Settings:
    environ = {"BREAKINGWIND_ENGINE__PARALLEL": str(slots)}  # continuous batching slots
    for agent, path in models.items():
        prefix = f"BREAKINGWIND_{agent.upper()}__"
        environ[f"{prefix}MODEL"] = str(path.resolve())
        environ[f"{prefix}N_CTX"] = str(n_ctx)
        environ[f"{prefix}N_GPU_LAYERS"] = "-1"
        environ[f"{prefix}FLASH_ATTN"] = flash_attn  # "auto", "on" or "off"
    return load_settings(environ=environ)


# --- measurements --------------------------------------------------------------------------


async def decode_pair(engine: Engine, agent: str, tokens: int, repeats: int) -> tuple[Run, Run]:
    """Median bare and engine runs, interleaved so that drift affects both alike."""
    worker = engine.worker(agent)
    sampling = SamplingParams(max_tokens=tokens, temperature=0, top_p=1, seed=None, grammar=None)
    prompt = worker.prepare(GenerationRequest(messages=BENCH_MESSAGES), sampling).tokens
    await worker.call_with_model(lambda llm: bare_decode(llm, prompt, 8))  # warm-up
    bare, streamed = [], []
    for _ in range(repeats):
        bare.append(await worker.call_with_model(lambda llm: bare_decode(llm, prompt, tokens)))
        streamed.append(await engine_stream(engine, agent, tokens))
    return median_run(bare), median_run(streamed)


async def concurrent_streams(
    engine: Engine, agent: str, n: int, tokens: int, temperature: float = 0.0
) -> dict[str, Any]:
    """`n` streams started together on one model; aggregate tok/s over the wall time, and where
    the batched steps' time went (`StepProfile`, per step)."""
    request = GenerationRequest(
        messages=BENCH_MESSAGES, max_tokens=tokens, temperature=temperature, ignore_eos=True
    )
    worker = engine.worker(agent)
    before = worker.step_profile
    started = time.perf_counter()
    streams = await asyncio.gather(*(engine.stream(agent, request) for _ in range(n)))
    results = await asyncio.gather(*(stream.collect() for stream in streams))
    elapsed = time.perf_counter() - started
    profile = worker.step_profile.since(before)
    generated = sum(result.usage.completion_tokens for result in results)
    return {
        "streams": n,
        "temperature": temperature,
        "tokens": generated,
        "seconds": elapsed,
        "aggregate_tps": generated / elapsed,
        "max_queued_s": max(result.timings.queued_s for result in results),
        "steps": profile.steps,
        "step_ms": profile.per_step_ms(),
        "per_token_us": {
            "sample": profile.sample_s * 1e6 / max(profile.sampled, 1),
            "emit": profile.emit_s * 1e6 / max(profile.sampled, 1),
        },
    }


def agent_figures(bare: Run, streamed: Run, per_token: int, bandwidth: float) -> dict[str, Any]:
    ceiling = bandwidth / per_token
    return {
        "prompt_tokens": bare.prompt_tokens,
        "bare_decode_tps": bare.decode_tps,
        "engine_decode_tps": streamed.decode_tps,
        "engine_vs_bare": streamed.decode_tps / bare.decode_tps,
        "bare_prefill_tps": bare.prefill_tps,
        "engine_prefill_tps": streamed.prefill_tps,
        "bytes_per_token": per_token,
        "ceiling_tps": ceiling,
        "bare_vs_ceiling": bare.decode_tps / ceiling,
        "engine_vs_ceiling": streamed.decode_tps / ceiling,
    }


class Results:
    """Every figure, saved to `path` as JSON after each stage."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def record(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=2, default=str))


async def run(
    models: dict[str, Path],
    profile: Profile,
    results: Results,
    concurrency_agent: str = CONCURRENCY_AGENT,
    llama_server: Path | None = None,
    measured: tuple[str, ...] = tuple(SHAPES),
    bandwidth_file: Path | None = None,
    flash_attn: str = "auto",
    task: bool = False,
) -> None:
    backend = compiled_backend()
    results.record("machine", machine_description())
    results.record("backend", backend)
    results.record("profile", asdict(profile))
    results.record("flash_attn_setting", flash_attn)
    if bandwidth_file is not None:  # measured once by the caller (scripts/bandwidth.py)
        bandwidth = json.loads(bandwidth_file.read_text())
    else:
        bandwidth = host_bandwidth() if backend == "CPU" else device_bandwidth()
    results.record("bandwidth", bandwidth)
    print(f"machine: {results.data['machine']}; llama.cpp backend {backend}", flush=True)
    print(
        f"memory bandwidth {bandwidth['bytes_per_s'] / 1e9:.0f} GB/s ({bandwidth['method']})",
        flush=True,
    )

    before = MemoryUse.now()
    slots = 1 if task else max(profile.streams)  # a task's stages run one after another
    engine = Engine(bench_settings(models, profile.n_ctx, slots, flash_attn))
    started = time.perf_counter()
    engine.start()
    per_token = {agent: bytes_read_per_token(models[agent]) for agent in measured}
    await engine.wait_ready()
    loaded_s = time.perf_counter() - started
    try:
        report_loads(engine, loaded_s, results)
        report_memory(engine, before, results)
        if task:
            await task_timelines(engine, profile, results)
            return
        figures = {}
        for agent in measured:
            bare, streamed = await decode_pair(engine, agent, profile.tokens, profile.repeats)
            figures[agent] = agent_figures(
                bare, streamed, per_token[agent], bandwidth["bytes_per_s"]
            )
            print_agent(agent, figures[agent])
            results.record("agents", figures)
        await concurrent_streams(engine, concurrency_agent, 1, 8)  # warm-up
        concurrency = []
        # greedy at every level, then the most streams sampled as the agents sample
        levels = [(n, 0.0) for n in profile.streams] + [(max(profile.streams), AGENT_TEMPERATURE)]
        for n, temperature in levels:
            concurrency.append(
                await concurrent_streams(
                    engine, concurrency_agent, n, profile.stream_tokens, temperature
                )
            )
            concurrency[-1]["vs_one_stream"] = (
                concurrency[-1]["aggregate_tps"] / concurrency[0]["aggregate_tps"]
            )
            print_concurrency(concurrency_agent, concurrency[-1])
            results.record("concurrency", {"agent": concurrency_agent, "runs": concurrency})
        flash_attn = engine.status()[concurrency_agent].report.flash_attn
    finally:
        engine.close()
    if llama_server is not None:
        peer = peer_streams(
            llama_server,
            models[concurrency_agent],
            profile,
            engine_slots=max(profile.streams),
            flash_attn=flash_attn,
        )
        for ours, theirs in zip(concurrency[: len(peer)], peer, strict=True):
            theirs["ours_vs_peer"] = ours["aggregate_tps"] / theirs["aggregate_tps"]
            print_peer(concurrency_agent, ours, theirs)
        results.record("peer_llama_server", {"agent": concurrency_agent, "runs": peer})


# --- the time of a whole task ----------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One model call of a task, with forced token counts."""

    name: str
    agent: str
    prompt_tokens: int
    output_tokens: int


# A complex refactor as issue 19 sizes it: the planner reads 6K tokens (task, repo map, tool
# results) and writes a 400-token plan; the coder reads 10K (plan + files) and writes 1,200
# (diffs); the reviewer reads 12K (task, plan, diffs, test results) and writes 300; one cycle.
TASK = (
    Stage("preprocess", "preprocessor", 500, 150),
    Stage("plan", "planner", 6000, 400),
    Stage("code", "coder", 10000, 1200),
    Stage("review", "reviewer", 12000, 300),
)
TASK_TINY_SCALE = 10  # the tiny profile's 2K context: every count divided by this
TASK_REPEATS = 2
CORPUS = Path(__file__).resolve().parent.parent / "breakingwind"  # real code as prompt text


def forced_prompt(worker: Any, n_tokens: int, offset: int) -> list[int]:
    """Exactly `n_tokens` tokens of this repository's Python source (real code, the model's own
    tokenizer), starting `offset` files in, so that no two stages share a prefix."""
    files = sorted(CORPUS.rglob("*.py"))
    files = files[offset % len(files) :] + files[: offset % len(files)]
    tokens: list[int] = []
    for path in files * (1 + n_tokens // 1000):
        tokens += worker.tokenize(path.read_text())
        if len(tokens) >= n_tokens:
            break
    return tokens[:n_tokens]


async def run_stage(engine: Engine, stage: Stage, offset: int) -> dict[str, Any]:
    """One stage: its forced prompt, greedy, exactly `output_tokens` generated (EOS ignored)."""
    worker = engine.worker(stage.agent)
    sampling = SamplingParams(
        max_tokens=stage.output_tokens,
        temperature=0,
        top_p=1,
        seed=None,
        grammar=None,
        ignore_eos=True,
    )
    tokens = forced_prompt(worker, stage.prompt_tokens, offset)
    prepared = PreparedRequest(tokens, [], sampling)
    started = time.monotonic()
    result = await worker.submit(prepared).collect()
    ended = time.monotonic()
    timings = result.timings
    first = timings.first_token_at or ended
    return {
        "stage": stage.name,
        "agent": stage.agent,
        "prompt_tokens": result.usage.prompt_tokens,
        "output_tokens": result.usage.completion_tokens,
        "seconds": ended - started,
        "ttft_s": first - started,
        "prefill_s": timings.prefill_s,
        "prefill_tps": result.usage.prompt_tokens / timings.prefill_s if timings.prefill_s else 0,
        "decode_s": timings.decode_s,
        "decode_tps": result.decode_tokens_per_s,
    }


async def task_timelines(engine: Engine, profile: Profile, results: Results) -> None:
    """The stages of one task, one after another as the pipeline runs them, TASK_REPEATS times
    from cold caches after a short warm-up (first-call costs: kernels, the EOG scan); the
    fastest run is reported, every run's total beside it."""
    scale = TASK_TINY_SCALE if profile.scale == "tiny" else 1
    stages = [
        replace(s, prompt_tokens=s.prompt_tokens // scale, output_tokens=s.output_tokens // scale)
        for s in TASK
    ]
    for index, stage in enumerate(stages):  # warm-up
        await run_stage(engine, replace(stage, prompt_tokens=64, output_tokens=8), index)
    runs = []
    for _ in range(TASK_REPEATS):
        for agent in {stage.agent for stage in stages}:
            await engine.worker(agent).clear_cache()
        runs.append([await run_stage(engine, stage, index) for index, stage in enumerate(stages)])
    totals = [sum(stage["seconds"] for stage in run) for run in runs]
    chosen = runs[totals.index(min(totals))]
    for stage in chosen:
        print(
            f"task {stage['stage']:<10} {stage['agent']:<12} reads {stage['prompt_tokens']:6d}"
            f" writes {stage['output_tokens']:5d}: {stage['seconds']:6.2f} s  TTFT"
            f" {stage['ttft_s']:5.2f} s (prefill {stage['prefill_tps']:7.0f} tok/s)  decode"
            f" {stage['decode_s']:6.2f} s ({stage['decode_tps']:6.1f} tok/s)",
            flush=True,
        )
    total = sum(stage["seconds"] for stage in chosen)
    print(
        f"task total {total:.2f} s over {len(chosen)} stages (runs: "
        f"{', '.join(f'{t:.2f}' for t in totals)} s)  ratio total/25s {total / 25:.3f}",
        flush=True,
    )
    results.record("task", {"stages": chosen, "total_s": total, "totals_s": totals})


# --- the peer: llama.cpp's llama-server on the same file -------------------------------------


def peer_streams(
    binary: Path, model: Path, profile: Profile, engine_slots: int, flash_attn: str
) -> list[dict[str, Any]]:
    """Start llama-server with the engine's settings (context, slots, all layers offloaded,
    flash attention as the engine had it, one unified cache) and send it the same streams."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [
        str(binary), "-m", str(model), "-c", str(profile.n_ctx), "-np", str(engine_slots),
        "--kv-unified", "-ngl", "999", "-fa", flash_attn, "--no-webui",
        # its host-RAM prompt cache saved a slot's state before each new request: 36 s stalls
        # with a 16K-cell cache on the H100 (docs/benchmarks.md); ours keeps no such copy
        "--cache-ram", "0",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    log_path = Path(tempfile.gettempdir()) / "llama-server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    print(f"llama-server: {' '.join(argv[1:])}", flush=True)
    try:
        started = time.monotonic()
        while not _serving(url):
            if process.poll() is not None or time.monotonic() - started > 120:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise SystemExit("llama-server did not start:\n" + "\n".join(tail))
            time.sleep(0.25)
        print(f"llama-server: serving after {time.monotonic() - started:.1f} s", flush=True)
        _http_streams(url, 1, 8)  # warm-up
        runs = []
        for n in profile.streams:
            runs.append(_http_streams(url, n, profile.stream_tokens))
            runs[-1]["vs_one_stream"] = runs[-1]["aggregate_tps"] / runs[0]["aggregate_tps"]
            print(f"llama-server: {n} streams done", flush=True)
        return runs
    finally:
        process.terminate()
        process.wait(30)


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _http_streams(url: str, n: int, tokens: int) -> dict[str, Any]:
    """`n` streamed chat requests at once (threads, stdlib HTTP: no client packages there)."""
    body = json.dumps(
        {
            "messages": BENCH_MESSAGES,
            "max_tokens": tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()

    def one(_: int) -> int:
        """Tokens as the server counted them (usage, else timings), never its chunks."""
        request = urllib.request.Request(
            f"{url}/v1/chat/completions", body, {"Content-Type": "application/json"}
        )
        final: dict[str, Any] = {}
        with urllib.request.urlopen(request, timeout=120) as response:
            for line in response:
                if line.startswith(b"data: {"):
                    chunk = json.loads(line[6:])
                    final |= {key: chunk[key] for key in ("usage", "timings") if chunk.get(key)}
        tokens = server_completion_tokens(final)
        if tokens is None:
            raise SystemExit("llama-server's stream said neither usage nor timings")
        return tokens

    started = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        generated = sum(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    return {
        "streams": n,
        "tokens": generated,
        "seconds": elapsed,
        "aggregate_tps": generated / elapsed,
    }


def print_peer(agent: str, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    print(
        f"{agent:<12} {ours['streams']} streams: breakingwind {ours['aggregate_tps']:8.1f} tok/s"
        f"  llama-server {theirs['aggregate_tps']:8.1f} tok/s ({theirs['vs_one_stream']:.2f}x its"
        f" 1 stream)  ratio breakingwind/llama-server {theirs['ours_vs_peer']:.3f}",
        flush=True,
    )


def report_loads(engine: Engine, loaded_s: float, results: Results) -> None:
    loads = {}
    for agent, status in engine.status().items():
        if status.state != "ready" or status.fallback or status.report is None:
            raise SystemExit(f"{agent}: {status.model_file} did not load: {status.error}")
        loads[agent] = asdict(status.report)
        print(f"{agent:<12} loaded: {status.report.describe()}", flush=True)
    print(f"engine start to all loaded (in parallel): {loaded_s:.1f} s", flush=True)
    results.record("load", {"wall_s": loaded_s, "agents": loads})


@dataclass(frozen=True)
class MemoryUse:
    gpu_bytes: int | None
    rss_bytes: int

    @classmethod
    def now(cls) -> MemoryUse:
        return cls(gpu_memory_used(), psutil.Process().memory_info().rss)


def report_memory(engine: Engine, before: MemoryUse, results: Results) -> None:
    """Memory the loaded models added vs the engine's estimate (file + f16 KV cache at n_ctx)."""
    loaded = {  # one entry per model file: agents sharing a file share its worker
        status.model_file: Path(status.model_file).stat().st_size + status.report.kv_cache_bytes
        for status in engine.status().values()
        if status.report is not None
    }
    estimated = sum(loaded.values())
    after = MemoryUse.now()
    results.record(
        "memory",
        {"estimated_bytes": estimated, "before": asdict(before), "after": asdict(after)},
    )
    if after.gpu_bytes is not None and before.gpu_bytes is not None:
        label, used, added = (
            "GPU memory (nvidia-smi)",
            after.gpu_bytes,
            after.gpu_bytes - before.gpu_bytes,
        )
    else:
        label, used, added = "process RSS", after.rss_bytes, after.rss_bytes - before.rss_bytes
    print(
        f"{label}: {used / 1e9:.2f} GB used, {added / 1e9:.2f} GB added by the models vs"
        f" estimated weights + KV {estimated / 1e9:.2f} GB: ratio added/estimated"
        f" {added / estimated:.3f}",
        flush=True,
    )


def print_agent(agent: str, f: dict[str, Any]) -> None:
    print(
        f"{agent:<12} decode tok/s bare {f['bare_decode_tps']:8.1f}  engine"
        f" {f['engine_decode_tps']:8.1f}  ratio engine/bare {f['engine_vs_bare']:.3f}",
        flush=True,
    )
    print(
        f"{agent:<12} ceiling {f['ceiling_tps']:8.1f} tok/s ({f['bytes_per_token'] / 1e9:.3f} GB"
        f" read per token)  ratio bare/ceiling {f['bare_vs_ceiling']:.3f}"
        f"  ratio engine/ceiling {f['engine_vs_ceiling']:.3f}",
        flush=True,
    )


def print_concurrency(agent: str, c: dict[str, Any]) -> None:
    sampling = "greedy" if c["temperature"] == 0 else f"temperature {c['temperature']}, top_p"
    print(
        f"{agent:<12} {c['streams']} streams ({sampling}): aggregate {c['aggregate_tps']:8.1f}"
        f" tok/s ({c['tokens']} tokens in {c['seconds']:.2f} s)  ratio {c['streams']}/1 streams"
        f" {c['vs_one_stream']:.3f}",
        flush=True,
    )
    ms = c["step_ms"]
    total = sum(ms.values())
    print(
        f"{agent:<12} {c['streams']} streams: {c['steps']} steps of {total:.2f} ms: device wait"
        f" {ms['device_wait']:.2f}, llama_decode call {ms['decode']:.2f}, batch build"
        f" {ms['build']:.2f}, sampling {ms['sample']:.2f}, Python per token {ms['emit']:.2f} ms;"
        f" per token: sample {c['per_token_us']['sample']:.0f} us, emit"
        f" {c['per_token_us']['emit']:.0f} us  ratio host/step"
        f" {(total - ms['device_wait']) / total if total else 0:.3f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", type=Path, required=True, help="folder of scripts/random_gguf.py's files"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="where to write the JSON of all figures"
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny files, a short run (CPU)")
    parser.add_argument("--n-ctx", type=int, help="context of every agent (default 16384)")
    parser.add_argument("--tokens", type=int, help="tokens per decode run (default 256)")
    parser.add_argument("--agent", choices=sorted(SHAPES), help="load and measure only this one")
    parser.add_argument("--llama-server", type=Path, help="also load this llama-server (peer)")
    parser.add_argument(
        "--bandwidth", type=Path, help="JSON of scripts/bandwidth.py (default: measure it)"
    )
    parser.add_argument(
        "--flash-attn",
        choices=("auto", "on", "off"),
        default="auto",
        help="every agent's flash_attn setting (default auto: on with a GPU backend)",
    )
    parser.add_argument(
        "--task",
        action="store_true",
        help="all four models: the stages of one task with forced token counts (TASK)",
    )
    args = parser.parse_args(argv)
    overrides = {"n_ctx": args.n_ctx, "tokens": args.tokens}
    profile = replace(
        PROFILES["tiny" if args.tiny else "full"],
        **{key: value for key, value in overrides.items() if value is not None},
    )
    models = {agent: args.models / file_name(agent, profile.scale) for agent in SHAPES}
    missing = [str(path) for path in models.values() if not path.is_file()]
    if missing:
        parser.error(f"missing model files (write them with scripts/random_gguf.py): {missing}")
    if args.agent:  # every agent on its file: one worker, one model in memory
        models = {agent: models[args.agent] for agent in SHAPES}
    results = Results(args.out)
    asyncio.run(
        run(
            models,
            profile,
            results,
            args.agent or CONCURRENCY_AGENT,
            args.llama_server,
            (args.agent,) if args.agent else tuple(SHAPES),
            args.bandwidth,
            args.flash_attn,
            args.task,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
