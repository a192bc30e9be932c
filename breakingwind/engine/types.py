"""The engine's shared types: what callers hand the engine, what every backend receives, and
what comes back. Plain data only: this module imports no backend (and so no llama_cpp), so the
remote and scripted backends, the edges and the tests can use it without loading a model runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from breakingwind.engine.output import JsonOutput

FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]
ModelState = Literal["loading", "ready", "failed"]


@dataclass(frozen=True)
class ToolCall:
    index: int
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True)
class ToolCallFormat:
    """How a model writes a tool call in its text (see `tool_calls.py` for the known formats)."""

    name: str
    open: str
    close: str  # "" means the block runs to the end of the generation
    list_block: bool  # the block holds a JSON list of calls rather than one call

    def render_call(self, name: str, arguments: dict[str, Any]) -> str:
        """How an earlier call appears in the history, for templates without tool support."""
        call = {"name": name, "arguments": arguments}
        body = json.dumps([call] if self.list_block else call)
        return f"{self.open}{body}{self.close}"


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its bytes, its log probability under the model (the
    logits before any sampler), and the most likely tokens at its place (`top`, best first)."""

    token: str
    bytes: tuple[int, ...]
    logprob: float
    top: tuple[TokenLogprob, ...] = ()


@dataclass
class GenerationRequest:
    """One generation: chat `messages` (rendered with the model's template) or a raw `prompt`.

    Sampling fields left as None take the agent's configured defaults.
    """

    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    suffix: str | None = None  # with `prompt`: fill in the middle, when the model has FIM tokens
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    top_k: int | None = None  # 0: off
    min_p: float | None = None  # 0: off
    repeat_penalty: float | None = None  # 1: off
    repeat_last_n: int | None = None  # generated tokens the penalties look back on
    frequency_penalty: float | None = None  # 0: off
    presence_penalty: float | None = None  # 0: off
    logit_bias: dict[int, float] | None = None  # token id -> bias added to its logit
    grammar: str | None = None  # GBNF; constrains every sampled token
    # The JSON schema `grammar` was built from, for backends that take a schema instead of a
    # grammar (a remote server gets it as response_format). The caller still validates.
    json_schema: dict[str, Any] | None = None
    # JSON output asked for by a client: the engine builds `grammar`/`json_schema` from it and
    # checks the output (see `output.py`).
    json_output: JsonOutput | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI-style function tools offered to the model
    # "auto" | "required" | "none" | a function name. With "none" a local model still sees the
    # tools (as OpenAI's models do) but cannot call them: a caller that continues a tool-using
    # conversation without tools keeps the rendered prompt, and with it the cached prefix.
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    # With callable tools written in the text (local models): end the reply once this many
    # characters of text came and no call has begun (finish "stop"). For a turn that only
    # gathers, whose prose is never used: a model answering instead of calling stops early.
    tool_preamble_chars: int | None = None
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks)
    # Stop when the output starts looping (engine/repetition.py); `GenerationResult.looped` says.
    # None: on inside a pipeline stage's token budget (engine/budget.py), else
    # engine.repetition_guard (off by default: the /v1 API).
    repetition_guard: bool | None = None
    # Report each generated token's log probability and this many likeliest alternatives
    # (0-20); None: none. Local models only (`GenerationResult.logprobs`, and streamed).
    logprobs: int | None = None
    # With `messages`: text the assistant's reply already begins with (rendered after the
    # template's generation prompt, prefilled, not generated). Local models only.
    assistant_prefix: str = ""

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        constrained = self.grammar or self.json_schema is not None or self.json_output
        if self.tools and self.tool_choice != "none" and constrained:
            raise ValueError("callable tools and a grammar cannot be combined")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused from the previous request

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    """Seconds spent in each phase; monotonic timestamps for ordering across requests."""

    queued_s: float
    prefill_s: float
    decode_s: float
    started_at: float
    first_token_at: float | None
    finished_at: float

    def tokens_per_s(self, tokens: int, seconds: float) -> float:
        return tokens / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class GenerationResult:
    text: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    looped: bool = False  # the repetition guard ended it (finish_reason is "stop")
    logprobs: list[TokenLogprob] | None = None  # when the request asked for them

    @property
    def decode_tokens_per_s(self) -> float:
        return self.timings.tokens_per_s(self.usage.completion_tokens, self.timings.decode_s)

    @property
    def prefill_tokens_per_s(self) -> float:
        evaluated = self.usage.prompt_tokens - self.usage.cached_tokens
        return self.timings.tokens_per_s(evaluated, self.timings.prefill_s)


@dataclass(frozen=True)
class ModelSpec:
    """How to load one model file (shared by every agent that names it)."""

    path: Path
    n_ctx: int
    n_gpu_layers: int
    n_batch: int
    threads: int | None
    chat_format: str | None
    agents: tuple[str, ...]
    n_parallel: int = 1  # sequences decoded together (continuous batching slots)
    flash_attn: Literal["auto"] | bool = "auto"  # "auto": on where the GPU backend has it


@dataclass(frozen=True)
class LoadReport:
    backend: str
    gpu_layers_offloaded: int
    n_layers: int
    weights_bytes: int
    kv_cache_bytes: int
    rss_delta_bytes: int
    load_s: float
    chat_template: str
    n_ctx: int
    flash_attn: str = "off"  # "on", "off", or "auto" (llama.cpp decides per device)

    def describe(self) -> str:
        gb = 1024**3
        return (
            f"{self.backend}, {self.gpu_layers_offloaded}/{self.n_layers + 1} layers offloaded,"
            f" weights {self.weights_bytes / gb:.2f} GiB + KV cache {self.kv_cache_bytes / gb:.2f}"
            f" GiB (n_ctx {self.n_ctx}), flash attention {self.flash_attn},"
            f" loaded in {self.load_s:.1f}s,"
            f" template {self.chat_template}"
        )


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    grammar: str | None
    top_k: int = 0  # 0: off
    min_p: float = 0.0  # 0: off
    repeat_penalty: float = 1.0  # 1: off
    repeat_last_n: int = 64  # generated tokens the penalties look back on (-1: all)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    grammar_triggers: tuple[str, ...] = ()  # lazy grammar: constrain only after a match
    ignore_eos: bool = False  # never sample an end-of-generation token (benchmarks)
    draft_tokens: int = 0  # prompt-lookup speculative decoding: tokens drafted per step (0: off)
    draft_ngram: int = 3  # longest n-gram matched against the prompt and output to draft
    repetition_guard: bool = False  # stop when the output loops (engine/repetition.py)
    logprobs: int = -1  # alternatives reported per token (-1: no log probabilities at all)


@dataclass(frozen=True)
class PreparedRequest:
    """A request rendered and tokenized, ready to queue."""

    tokens: list[int]
    stop: list[str]
    sampling: SamplingParams
    tool_format: ToolCallFormat | None = None  # set when tools were offered
    max_wait_s: float | None = None  # waiting longer for a slot ends in QueueFull (None: wait)
