"""The runtime: the one object that wires a running BreakingWind, whoever runs it.

The daemon (`api/app.py`), `breakingwind run` in-process (`runner.py`), `breakingwind eval`,
`bench --pipeline` and spec-kit all open it the same way, from settings:

    async with open_runtime(settings) as runtime:
        state = runtime.pipeline.submit(await runtime.task_text(parts, root), root)

```
 open_runtime(settings) ─▶ Runtime
                            ├─ engine       models, one worker thread each (or a given engine)
                            ├─ media        speech / screenshots → text, loaded on first use
                            ├─ store        tasks + events, SQLite
                            ├─ pipeline     preprocess → plan → code ⇄ review, on engine + store
                            ├─ registries   one tool registry per project root / workspace
                            └─ task_text()  content parts → the task's text (one conversion)
```

What it opens it closes, in reverse order; an engine, media service or store handed in belongs
to the caller (started and closed there). Measurements observe the runtime (`observe`) instead of
patching it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from breakingwind.config import Settings
from breakingwind.engine import Engine
from breakingwind.media import ContentPart, MediaService
from breakingwind.media.parts import content_text
from breakingwind.pipeline import Pipeline, current_task
from breakingwind.store import TaskStore
from breakingwind.tools.registry import ToolRegistries, ToolRegistry


@dataclass(frozen=True)
class Timing:
    """Seconds a task spent in one model call (queueing included) or one test run."""

    kind: Literal["model", "tests"]
    task_id: str | None  # None: not on behalf of a task (a chat request, spec-kit)
    seconds: float


Observer = Callable[[Timing], None]


class Runtime:
    """Engine, media, store, pipeline and tool registries of one process; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        media: MediaService,
        store: TaskStore,
        registries: ToolRegistries,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.media = media
        self.store = store
        self.registries = registries
        self.pipeline = Pipeline(settings, engine, store, registries)
        self._engine_observers: list[Callable[[str, float], None]] = []

    def registry(self, root: Path) -> ToolRegistry:
        """The tools working inside `root` (the same registry for every caller)."""
        return self.registries.get(root)

    async def task_text(
        self, content: str | Sequence[ContentPart | dict[str, Any]], root: Path, param: str
    ) -> str:
        """The text of a message or task: text as typed, images and audio read now (OCR,
        transcription) and written under headings. A bad part raises a `MediaError` whose
        `param` starts with `param` (where the content sat in the request)."""
        return await content_text(self.media, content, root, param)

    def observe(self, observer: Observer) -> None:
        """Call `observer` with the time of every model call and test run until it closes."""

        def on_model(_agent: str, seconds: float) -> None:
            observer(Timing("model", current_task.get(), seconds))

        self.engine.observers.append(on_model)
        self._engine_observers.append(on_model)
        self.pipeline.test_observers.append(
            lambda seconds: observer(Timing("tests", current_task.get(), seconds))
        )

    def _detach(self) -> None:
        """Stop observing a (possibly shared) engine."""
        for on_model in self._engine_observers:
            self.engine.observers.remove(on_model)
        self._engine_observers.clear()


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    engine: Engine | None = None,
    media: MediaService | None = None,
    registries: ToolRegistries | None = None,
    store: TaskStore | None = None,
    resume: bool = False,
) -> AsyncIterator[Runtime]:
    """Open everything `settings` describes; close it on exit.

    Models start loading at once (requests wait for them). With `resume`, tasks that were
    running when the last process stopped start again (the daemon). On exit running tasks are
    stopped without being ended, so a later `resume` picks them up.
    """
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    own_engine = engine is None
    if engine is None:
        engine = Engine(settings)
        engine.start()
    own_media = media is None
    media = media or MediaService(settings)
    own_store = store is None
    runtime: Runtime | None = None
    try:
        if store is None:  # takes the data folder's lock, checks the database
            store = TaskStore(settings.storage.database_path)
        runtime = Runtime(settings, engine, media, store, registries or ToolRegistries(settings))
        if resume:
            await asyncio.to_thread(runtime.pipeline.sweep_workspaces)
            runtime.pipeline.resume_unfinished()
        yield runtime
    finally:
        if runtime is not None:
            await runtime.pipeline.shutdown()
            runtime._detach()
        if store is not None and own_store:
            store.close()
        if own_media:
            await media.close()
        if own_engine:
            await asyncio.to_thread(engine.close)
