"""Token budgets for a unit of work (a pipeline stage), carried by a context variable.

A stage opens `token_budget(n)`; every `Engine.complete` inside it (in the same task or tasks it
starts) has its `max_tokens` capped by what is left and adds the tokens it generated. Once the
budget is spent, the next request raises `TokenBudgetExhausted` before generating anything.
The same scope says whether those requests use the repetition guard, so agent calls get it
without each call site naming it.
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
    used: int = 0
    opened_at: float = field(default_factory=monotonic)

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


_CURRENT: ContextVar[TokenBudget | None] = ContextVar("token_budget", default=None)


@contextmanager
def token_budget(limit: int, repetition_guard: bool = True) -> Iterator[TokenBudget]:
    """Count and cap the tokens generated inside the block."""
    budget = TokenBudget(limit, repetition_guard)
    reset = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(reset)


def current_budget() -> TokenBudget | None:
    return _CURRENT.get()
