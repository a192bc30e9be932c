"""Log probabilities of generated tokens, read from a row of raw logits (numpy only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from breakingwind.engine.types import TokenLogprob

MAX_TOP = 20  # as OpenAI's top_logprobs


class LogprobReader:
    """Turns a logits row and the token sampled from it into a `TokenLogprob`.

    Read the row *before* sampling: a greedy argmax masks tokens in it in place.
    """

    def __init__(self, piece: Callable[[int], bytes], top: int) -> None:
        self._piece = piece
        self._top = max(0, min(top, MAX_TOP))

    def log_softmax(self, logits: np.ndarray) -> np.ndarray:
        row = logits.astype(np.float64)
        peak = row.max()
        return row - (peak + np.log(np.exp(row - peak).sum()))

    def entry(self, logprobs: np.ndarray, token: int) -> TokenLogprob:
        top: tuple[TokenLogprob, ...] = ()
        if self._top:
            best = np.argpartition(logprobs, -self._top)[-self._top :]
            best = best[np.argsort(-logprobs[best], kind="stable")]
            top = tuple(self._plain(int(t), logprobs) for t in best)
        return replace(self._plain(token, logprobs), top=top)

    def _plain(self, token: int, logprobs: np.ndarray) -> TokenLogprob:
        raw = self._piece(token)
        return TokenLogprob(
            token=raw.decode("utf-8", errors="replace"),
            bytes=tuple(raw),
            logprob=float(logprobs[token]),
        )
