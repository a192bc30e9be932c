"""The repetition guard: stop a generation that has started looping.

Small models fall into loops (the same phrase, line or JSON item over and over) and then spend
their whole token budget on it. The guard watches the generated tokens and ends the generation
once its tail is periodic:

- exactly: the last `span` tokens repeat a pattern of at most `MAX_PERIOD` tokens at least
  `MIN_REPEATS` times, and span at least `MIN_SPAN` tokens (so a short run of equal tokens, like
  indentation or a separator line, is not a loop);
- nearly: a loop that changes a little each time round, as a counter does (`"13.0.0.0",` then
  `"14.0.0.0",` ...): at least `NEAR_MATCH` of the last `span` tokens equal the token one period
  back, over `NEAR_MIN_REPEATS` periods and at least `NEAR_MIN_SPAN` tokens;
- by lines: the same few lines over and over with small changes whose token counts differ, so
  that no token period lines up (two test functions alternating, numbered `# 10`, `# 11` ...):
  with digits read as one digit, at least `LINE_MATCH` of the last lines equal the line one
  period back, over `LINE_MIN_REPEATS` periods of 2 to `LINE_MAX_PERIOD` lines.

Code, even a regular table or a dict literal, stays well under those shares: none of this
project's source files, tests and docs trips a check at any point (tests/test_generation_guards.py
runs them over real files). Of 341 files scanned with the httpx and pydantic sources, one did:
pydantic's warnings.py, a class repeated with only its version numbers changed, three times over.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

import numpy as np

MAX_PERIOD = 64  # longest repeating pattern detected, in tokens
MIN_REPEATS = 3  # times the pattern must repeat back to back
MIN_SPAN = 48  # tokens the repeating tail must cover at least
NEAR_MATCH = 0.8  # share of a near loop's tokens equal to the token one period back
NEAR_MIN_REPEATS = 6
NEAR_MIN_SPAN = 96
NEAR_EVERY = 8  # generated tokens between two near-loop checks (each costs ~60 array compares)


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


def near_loop_period(tokens: list[int], start: int = 0) -> int:
    """The period of a near loop at the end of `tokens[start:]`, or 0 when there is none."""
    longest = min(len(tokens) - start, max(NEAR_MIN_SPAN, MAX_PERIOD * NEAR_MIN_REPEATS))
    if longest < NEAR_MIN_SPAN:
        return 0
    tail = np.asarray(tokens[len(tokens) - longest :], dtype=np.int64)
    for period in range(2, MAX_PERIOD + 1):
        span = max(NEAR_MIN_SPAN, period * NEAR_MIN_REPEATS)
        if span > longest:
            return 0
        window = tail[longest - span :]
        if np.count_nonzero(window[period:] == window[:-period]) >= NEAR_MATCH * (span - period):
            return period
    return 0


LINE_MATCH = 0.95
LINE_MIN_REPEATS = 3
LINE_MIN_LINES = 16
LINE_MAX_PERIOD = 16
_NUMBER = re.compile(r"\d+")


def line_shape(line: str) -> str:
    """A line as the line check compares it: trailing space dropped, every number one digit."""
    return _NUMBER.sub("0", line.rstrip())


LINE_WINDOW = max(LINE_MIN_LINES, LINE_MAX_PERIOD * LINE_MIN_REPEATS)  # lines a check reads


class LineTail:
    """The shapes of a generation's last `LINE_WINDOW` complete lines, kept up to date as its
    text streams in (so the line check never rereads the whole text)."""

    def __init__(self) -> None:
        self._partial = ""
        self.shapes: deque[str] = deque(maxlen=LINE_WINDOW)

    def feed(self, text: str) -> bool:
        """Take the next piece of text; True when it completed at least one line."""
        *done, self._partial = (self._partial + text).split("\n")
        self.shapes.extend(line_shape(line) for line in done)
        return bool(done)


def shapes_loop_period(shapes: Sequence[str]) -> int:
    """The period, in lines, of a loop at the end of these line shapes (at most `LINE_WINDOW`),
    or 0."""
    tail = list(shapes)
    longest = len(tail)
    if longest < LINE_MIN_LINES:
        return 0
    for period in range(2, LINE_MAX_PERIOD + 1):
        span = max(LINE_MIN_LINES, period * LINE_MIN_REPEATS)
        if span > longest:
            return 0
        window = tail[longest - span :]
        same = sum(window[i] == window[i - period] for i in range(period, span))
        if same >= LINE_MATCH * (span - period):
            return period
    return 0


class LoopGuard:
    """One generation's repetition guard, asked after each generated token: the exact check every
    token, the line check when the token ended a line, the near check every `NEAR_EVERY`
    tokens."""

    def __init__(self, start: int) -> None:
        self._start = start  # where generation began in the tokens it is shown
        self._lines = LineTail()

    def looping(self, tokens: list[int], generated: int, text: str) -> bool:
        """Whether `tokens` (the prompt, then `generated` tokens, the last one's text `text`)
        end in a loop."""
        ended_line = self._lines.feed(text)
        if generated < MIN_SPAN:
            return False
        if loop_period(tokens, self._start):
            return True
        if ended_line and shapes_loop_period(self._lines.shapes):
            return True
        return generated % NEAR_EVERY == 0 and near_loop_period(tokens, self._start) > 0
