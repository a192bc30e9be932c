"""What a load run does: how many clients, for how long, which mix of requests, and the limits
that decide its verdicts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["chat_stream", "completion", "mcp_call", "workflow"]
KINDS: tuple[Kind, ...] = ("chat_stream", "completion", "mcp_call", "workflow")
# A workflow keeps its client for a minute or more while a chat takes seconds, so a small share
# of picks already puts a good part of the clients in workflows at any time.
DEFAULT_MIX: dict[Kind, float] = {
    "chat_stream": 0.45,
    "completion": 0.30,
    "mcp_call": 0.22,
    "workflow": 0.03,
}
DEFAULT_TIMEOUTS_S: dict[Kind, float] = {
    "chat_stream": 120.0,
    "completion": 120.0,
    "mcp_call": 60.0,
    "workflow": 300.0,
}


class LoadPlan(BaseModel):
    """The inputs of one run; every request is bounded by its kind's timeout."""

    model_config = ConfigDict(extra="forbid")

    clients: int = Field(50, ge=1, le=1000, description="Concurrent clients.")
    duration_s: float = Field(
        180.0, gt=0, description="Clients start requests for this long, then finish the last one."
    )
    warmup_s: float | None = Field(
        None, ge=0, description="Memory is judged after this (default: a third of the duration)."
    )
    prime: bool = Field(
        True,
        description="Before the clock starts, run each kind of request once (but the workflow),"
        " so first uses do not read as memory growth.",
    )
    window_s: float = Field(
        30.0, gt=0, description="Each client must make progress in every window of this length."
    )
    seed: int = Field(0, description="Seed of every client's choice of requests.")
    mix: dict[Kind, float] = Field(
        default_factory=lambda: dict(DEFAULT_MIX), description="Weight of each kind of request."
    )
    timeouts_s: dict[Kind, float] = Field(
        default_factory=lambda: dict(DEFAULT_TIMEOUTS_S),
        description="Longest a request of each kind may take; reaching it counts as a hang.",
    )
    read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest silence on a stream (the daemon sends a keep-alive every"
        " server.keepalive_s, 10 s by default); longer counts as a hang.",
    )
    max_tokens: int = Field(48, ge=1, le=4096, description="Cap on generated tokens per request.")
    workflow_stage_timeout_s: float = Field(
        20.0, gt=0, le=3600, description="Stage time limit sent with each workflow (its options)."
    )
    daemon_max_queue: int | None = Field(
        None,
        ge=1,
        description="A daemon of its own only: engine.max_queue (default: the default config's),"
        " smaller to see back-pressure with few clients.",
    )
    max_memory_slope_mb_per_min: float = Field(
        5.0, gt=0, description="Memory counts as flat when RSS after warm-up grows slower."
    )
    max_thread_growth: int = Field(
        8, ge=0, description="Threads may exceed the warm-up maximum by this many at most."
    )

    @model_validator(mode="after")
    def _mix_has_weight(self) -> LoadPlan:
        if sum(self.mix.values()) <= 0 or any(w < 0 for w in self.mix.values()):
            raise ValueError("mix needs non-negative weights with a positive sum")
        return self

    @property
    def warmup(self) -> float:
        return self.duration_s / 3 if self.warmup_s is None else min(self.warmup_s, self.duration_s)
