"""Token budgets for a unit of work (a pipeline stage), carried by a context variable.

A stage opens `token_budget(n)`; every `Engine.complete` inside it (in the same task or tasks it
starts) has its `max_tokens` capped by what is left and adds the tokens it generated. Once the
budget is spent, the next request raises `TokenBudgetExhausted` before generating anything.
The same scope says whether those requests use the repetition guard, so agent calls get it
without each call site naming it, and by when the stage wants its answer (`deadline`), so an
agent can stop gathering context, or cut its work short, before the stage's time limit ends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import monotonic


@dataclass
class TokenBudget:
    limit: int  # completion tokens the scope may generate in total
    repetition_guard: bool = True  # default of the scope's requests
    seconds: float | None = None  # time the scope's work should take at most
    used: int = 0
    opened_at: float = field(default_factory=monotonic)

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def deadline(self) -> float | None:
        """When the work should be done (time.monotonic / the event loop's clock)."""
        return None if self.seconds is None else self.opened_at + self.seconds

    def time_share_left(self) -> float:
        """The share of the scope's time still ahead (1.0 without a time limit)."""
        if self.seconds is None:
            return 1.0
        return max(0.0, 1.0 - (monotonic() - self.opened_at) / self.seconds)


_CURRENT: ContextVar[TokenBudget | None] = ContextVar("token_budget", default=None)


@contextmanager
def token_budget(
    limit: int, repetition_guard: bool = True, seconds: float | None = None
) -> Iterator[TokenBudget]:
    """Count and cap the tokens generated inside the block."""
    budget = TokenBudget(limit, repetition_guard, seconds)
    reset = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(reset)


def current_budget() -> TokenBudget | None:
    return _CURRENT.get()
