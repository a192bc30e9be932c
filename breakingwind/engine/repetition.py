"""The repetition guard: stop a generation that has started looping.

Small models fall into loops (the same phrase, line or JSON item over and over) and then spend
their whole token budget on it. The guard watches the generated tokens and ends the generation
once its tail is periodic: the last `span` tokens repeat a pattern of at most `MAX_PERIOD` tokens
at least `MIN_REPEATS` times, and span at least `MIN_SPAN` tokens (so a short run of equal
tokens, like indentation or a separator line, is not a loop).
"""

from __future__ import annotations

MAX_PERIOD = 64  # longest repeating pattern detected, in tokens
MIN_REPEATS = 3  # times the pattern must repeat back to back
MIN_SPAN = 48  # tokens the repeating tail must cover at least


def loop_period(tokens: list[int], start: int = 0) -> int:
    """The period of the loop at the end of `tokens[start:]`, or 0 when it is not looping."""
    n = len(tokens) - start
    for period in range(1, MAX_PERIOD + 1):
        span = max(MIN_SPAN, period * MIN_REPEATS)
        if span > n:
            return 0  # the span only grows with the period
        end = len(tokens)
        # A sequence is periodic with period p exactly when it equals itself shifted by p.
        if tokens[end - span + period : end] == tokens[end - span : end - period]:
            return period
    return 0
