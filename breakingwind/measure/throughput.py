"""Decode throughput, measured the same way for `breakingwind bench` and `scripts/gpu_bench.py`.

Two paths over the same loaded model and the same prompt tokens:
- bare: prefill, then a plain sample + llama_decode loop on the owner thread — no streaming, no
  detokenisation, no stop checks; the ceiling any serving path can reach;
- engine: the engine's own generation loop, streamed to an asyncio consumer.
Decode speed is measured between the first and the last token, so queueing and prefill are out.
Only the engine is imported here (no HTTP), so this runs where nothing else of BreakingWind is
installed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import llama_cpp
from llama_cpp import Llama
from llama_cpp._internals import LlamaSampler

from breakingwind.engine.engine import Engine
from breakingwind.engine.types import GenerationRequest
from breakingwind.engine.worker import eog_tokens

BENCH_MESSAGES = [
    {"role": "system", "content": "You are a careful senior software engineer."},
    {
        "role": "user",
        "content": "Explain, step by step, how a hash map handles collisions, "
        "with a short Python example.",
    },
]


@dataclass(frozen=True)
class Run:
    prompt_tokens: int
    generated: int
    prefill_s: float
    first_to_last_s: float
    ttft_s: float

    @property
    def decode_tps(self) -> float:
        return (self.generated - 1) / self.first_to_last_s if self.first_to_last_s > 0 else 0.0

    @property
    def prefill_tps(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else 0.0


def bare_decode(llm: Llama, prompt: list[int], n_tokens: int) -> Run:
    """Prefill `prompt`, then greedily decode `n_tokens` with nothing else in the loop.

    Run it on the model's owner thread (`ModelWorker.call_with_model`); it leaves the KV cache
    empty.
    """
    llm.n_tokens = 0
    llm._ctx.kv_cache_clear()
    started = time.perf_counter()
    llm.eval(prompt)
    prefilled = time.perf_counter()
    sampler = LlamaSampler()
    sampler.add_logit_bias(llm.n_vocab(), dict.fromkeys(eog_tokens(llm), -1e30))
    sampler.add_greedy()
    ctx = llm._ctx.ctx
    token_buffer = (llama_cpp.llama_token * 1)()
    first = last = prefilled
    try:
        for i in range(n_tokens):
            token = llama_cpp.llama_sampler_sample(sampler.sampler, ctx, -1)
            last = time.perf_counter()
            if i == 0:
                first = last
            if i + 1 < n_tokens:
                token_buffer[0] = token
                if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(token_buffer, 1)):
                    raise RuntimeError("llama_decode failed")
    finally:
        sampler.close()
        # Positions advanced outside Llama's own bookkeeping: drop the cache for the next user.
        llm.n_tokens = 0
        llm._ctx.kv_cache_clear()
    return Run(len(prompt), n_tokens, prefilled - started, last - first, first - started)


async def engine_stream(engine: Engine, agent: str, n_tokens: int) -> Run:
    """One greedy streamed chat generation of `n_tokens` (EOS ignored) through the engine."""
    request = GenerationRequest(
        messages=BENCH_MESSAGES, max_tokens=n_tokens, temperature=0, ignore_eos=True
    )
    await engine.worker(agent).clear_cache()  # type: ignore[attr-defined]  # full prefill each run
    started = time.perf_counter()
    stream = await engine.stream(agent, request)
    first = last = 0.0
    async for _ in stream:
        last = time.perf_counter()
        first = first or last
    assert stream.result is not None
    usage = stream.result.usage
    return Run(
        usage.prompt_tokens,
        usage.completion_tokens,
        stream.result.timings.prefill_s,
        last - first,
        first - started,
    )


def server_completion_tokens(final: dict[str, Any]) -> int | None:
    """Tokens a server says it generated for one streamed answer: its `usage` (OpenAI's
    `stream_options.include_usage`), else llama-server's `timings.predicted_n`; None when it says
    neither (then tokenize the text). Never count chunks: a server may put several tokens in one
    (llama-server sent ~117 chunks for 128 tokens on the H200)."""
    usage = final.get("usage") or {}
    if isinstance(usage.get("completion_tokens"), int):
        return usage["completion_tokens"]
    timings = final.get("timings") or {}
    if isinstance(timings.get("predicted_n"), int):
        return timings["predicted_n"]
    return None


def median_run(runs: list[Run]) -> Run:
    """The run with the median decode speed."""
    return sorted(runs, key=lambda r: r.decode_tps)[len(runs) // 2]


def gpu_memory_used() -> int | None:
    """Bytes in use on all NVIDIA GPUs, every process (None without nvidia-smi; Apple's unified
    memory shows in the RSS)."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return sum(int(mib) for mib in out if mib.isdigit()) * (1 << 20) if out else None


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = ""
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        gpu = f", GPU {out.splitlines()[0]}" if out else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, {platform.system()} {platform.machine()}"
