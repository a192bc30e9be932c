"""Stop strings for streamed text: hold back only what could still become a stop string."""

from __future__ import annotations


class StopMatcher:
    """Feed it text pieces; it returns what is safe to emit and whether a stop string was hit."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._longest = max((len(stop) for stop in self._stops), default=0)
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add `piece`; return the text that can be emitted now (never part of a stop string)."""
        if not self._stops:
            return piece
        text = self._pending + piece
        cut = min((i for i in (text.find(stop) for stop in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return text[:cut]
        keep = self._partial_suffix_length(text)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """At the end of generation: the held-back text was not a stop string after all."""
        text, self._pending = self._pending, ""
        return text

    def _partial_suffix_length(self, text: str) -> int:
        for length in range(min(self._longest - 1, len(text)), 0, -1):
            tail = text[-length:]
            if any(stop.startswith(tail) for stop in self._stops):
                return length
        return 0
