"""The stream between a backend and the engine: a `Job` carries one request's output from
whatever produces it (the worker thread, a remote server, a script) to the coroutine reading its
`GenerationStream`. Every backend feeds the same two classes; no llama_cpp here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from breakingwind.engine.types import (
    GenerationResult,
    PreparedRequest,
    TokenLogprob,
    ToolCallFormat,
)


class Job:
    __slots__ = ("prepared", "cancel", "loop", "out", "enqueued_at")

    """One queued request: its cancel flag and the queue its deltas and result arrive on."""

    def __init__(self, prepared: PreparedRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.prepared = prepared
        self.cancel = threading.Event()
        self.loop = loop
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.enqueued_at = time.monotonic()

    def emit(self, item: Any) -> None:
        """Hand an item to the waiting coroutine (called from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the caller's event loop is gone: nobody is listening any more
            self.cancel.set()


_SILENCE = object()  # put in a stream's queue by the keep-alive timer


class GenerationStream:
    """Async iterator of text deltas; `result` holds usage and timings once it is exhausted.

    When the request asked for log probabilities, each token's entry arrives just before its
    text; `take_logprobs()` hands over those that came since the last call.
    """

    def __init__(self, job: Job, tool_format: ToolCallFormat | None = None) -> None:
        self._job = job
        self._done = False
        self._logprobs: list[TokenLogprob] = []
        self.result: GenerationResult | None = None
        self.tool_format = tool_format  # when set, the text may hold tool calls in this format

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._job.out.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if item is _SILENCE:
            return await self.__anext__()
        if isinstance(item, TokenLogprob):
            self._logprobs.append(item)
            return await self.__anext__()
        if isinstance(item, str):
            return item
        self._finish(item)
        raise StopAsyncIteration

    async def deltas(self, keepalive_s: float) -> AsyncIterator[str | None]:
        """Text deltas for a streaming response: whatever is already waiting is joined into one
        delta (fewer, larger chunks when the consumer falls behind), and None is yielded after
        `keepalive_s` of silence so the caller can keep the connection alive."""
        queue = self._job.out
        loop = asyncio.get_running_loop()
        try:
            while not self._done:
                if queue.empty():
                    timer = loop.call_later(keepalive_s, queue.put_nowait, _SILENCE)
                    try:
                        item = await queue.get()
                    finally:
                        timer.cancel()
                else:
                    item = queue.get_nowait()
                if item is _SILENCE:
                    yield None
                    continue
                if isinstance(item, TokenLogprob):
                    self._logprobs.append(item)
                    continue
                if not isinstance(item, str):
                    self._finish(item)
                    return
                parts = [item]
                while not queue.empty():
                    more = queue.get_nowait()
                    if isinstance(more, str):
                        parts.append(more)
                    elif isinstance(more, TokenLogprob):
                        self._logprobs.append(more)
                    elif more is not _SILENCE:
                        yield "".join(parts)
                        self._finish(more)
                        return
                yield "".join(parts)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancel()
            raise

    def take_logprobs(self) -> list[TokenLogprob]:
        """The token log probabilities received since the last call."""
        taken, self._logprobs = self._logprobs, []
        return taken

    def _finish(self, item: Any) -> None:
        self._done = True
        if isinstance(item, GenerationResult):
            self.result = item
            return
        raise item

    def cancel(self) -> None:
        """Stop generation; the worker notices before its next token."""
        self._job.cancel.set()

    async def aclose(self) -> None:
        if not self._done:
            self.cancel()

    async def collect(self) -> GenerationResult:
        """Drain the stream and return the final result."""
        async for _ in self:
            pass
        assert self.result is not None
        return self.result

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._done:
            self._job.cancel.set()
