"""Prompt-lookup drafts for speculative decoding: edits copy their input.

When the last few generated tokens also appear earlier in the prompt or the output, the tokens
that followed them there are a cheap guess of what comes next. The guess is verified by the model
in the same llama_decode as the real next token, so a wrong guess costs compute but never changes
the output: only tokens the sampler itself picks are kept.
"""

from __future__ import annotations


class PromptLookup:
    """Drafts continuations of `history` (the prompt plus the tokens generated so far) from the
    latest earlier occurrence of its last n tokens, trying the longest n-gram first."""

    def __init__(self, history: list[int], max_ngram: int) -> None:
        self._history = history  # shared with the sequence, which appends to it
        self._sizes = range(max_ngram, 0, -1)
        # n -> n-gram -> index just after its latest occurrence
        self._index: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in self._sizes}
        self._indexed = 0  # n-grams ending before this index are in the index

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the longest earlier match of the history's tail."""
        history = self._history
        end = len(history)
        if limit <= 0 or end < 2:
            return []
        self._index_until(end - 1)  # earlier occurrences only: the tail must not match itself
        for n in self._sizes:
            if n >= end:
                continue
            after = self._index[n].get(tuple(history[end - n :]))
            if after is not None:
                return history[after : after + limit]
        return []

    def _index_until(self, stop: int) -> None:
        history = self._history
        for after in range(self._indexed + 1, stop + 1):
            for n in self._sizes:
                if after >= n:
                    self._index[n][tuple(history[after - n : after])] = after
        self._indexed = max(self._indexed, stop)
