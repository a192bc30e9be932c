"""What callers hand the engine and what they get back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from breakingwind.engine.tool_calls import ToolCall

FinishReason = Literal["stop", "length", "cancelled", "tool_calls"]


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
    tools: list[dict[str, Any]] | None = None  # OpenAI-style function tools offered to the model
    tool_choice: str = "auto"  # "auto" | "required" | "none" | a function name
    parallel_tool_calls: bool = True
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        if self.tools and (self.grammar or self.json_schema is not None):
            raise ValueError("tools and a grammar cannot be combined")


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

    @property
    def decode_tokens_per_s(self) -> float:
        return self.timings.tokens_per_s(self.usage.completion_tokens, self.timings.decode_s)

    @property
    def prefill_tokens_per_s(self) -> float:
        evaluated = self.usage.prompt_tokens - self.usage.cached_tokens
        return self.timings.tokens_per_s(evaluated, self.timings.prefill_s)
