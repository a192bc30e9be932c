"""A model that loads on first use, runs on its own thread and unloads after an idle spell."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
M = TypeVar("M")
T = TypeVar("T")


class LazyModel(Generic[M]):
    """One model object owned by one worker thread.

    `run(fn)` calls `fn(model)` on that thread, loading the model first if needed, one call at a
    time (so models that are not thread-safe stay safe), and never blocks the event loop. After
    `idle_unload_s` without a call the model is dropped, on the same thread, and reloads on the
    next call. A load failure is raised to the caller and retried on the next call.
    """

    def __init__(self, name: str, load: Callable[[], M], idle_unload_s: float | None) -> None:
        self.name = name
        self._load = load
        self._idle_unload_s = idle_unload_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"media-{name}")
        self._model: M | None = None
        self._calls = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    async def run(self, fn: Callable[[M], T]) -> T:
        """`fn(model)` on the model's thread; the result (or exception) comes back here."""
        loop = asyncio.get_running_loop()
        self._calls += 1
        try:
            return await loop.run_in_executor(self._executor, self._call, fn)
        finally:
            self._arm_idle_timer(loop)

    async def close(self) -> None:
        """Cancel the idle timer, drop the model and stop the thread (after any running call)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._drop)
        self._executor.shutdown(wait=False)

    def _call(self, fn: Callable[[M], T]) -> T:
        if self._model is None:
            started = time.monotonic()
            self._model = self._load()
            log.info("loaded the %s model in %.1f s", self.name, time.monotonic() - started)
        return fn(self._model)

    def _arm_idle_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._idle_unload_s is None:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = loop.call_later(self._idle_unload_s, self._unload_if_idle, self._calls)

    def _unload_if_idle(self, calls_when_armed: int) -> None:
        """On the event loop: unload unless a call came in since the timer was armed."""
        if self._calls == calls_when_armed and self._model is not None:
            self._executor.submit(self._unload, calls_when_armed)

    def _unload(self, calls_when_armed: int) -> None:
        # On the model's thread, so it never races a call; a call submitted meanwhile wins.
        if self._calls == calls_when_armed:
            self._drop()
            log.info("unloaded the %s model after %.0f s idle", self.name, self._idle_unload_s)

    def _drop(self) -> None:
        self._model = None
