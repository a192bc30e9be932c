"""A scripted model: answers come from a queue instead of a neural network.

For tests of pipeline branches a tiny model cannot reach on purpose (a rejected review, an
escalation, a diff that does not apply, a stage that hangs). Registered on a live engine with
`Engine.replace_model(agent, ScriptedModel(...))`, it replaces only the generate call: the engine's
queue discipline, cancellation, tool-call parsing and everything above stay the real code.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from breakingwind.engine.stream import GenerationStream, Job
from breakingwind.engine.tool_calls import HERMES
from breakingwind.engine.types import (
    GenerationRequest,
    GenerationResult,
    LoadReport,
    ModelSpec,
    ModelState,
    PreparedRequest,
    SamplingParams,
    Timings,
    Usage,
)
from breakingwind.errors import ModelLoadError, ModelUnavailable


@dataclass(frozen=True)
class _ScriptedRequest(PreparedRequest):
    """A prepared request that carries its original request: the engine may `replace()` fields
    (its queue wait) after `prepare`, and a dataclass replace keeps this field."""

    request: GenerationRequest | None = None


@dataclass(frozen=True)
class Hang:
    """An answer that never comes: the request runs until it is cancelled (timeouts, cancel)."""


Answer = str | Hang | Callable[[GenerationRequest], str]
PIECE_CHARS = 8  # answers stream in small pieces, like tokens


class ScriptedModel:
    """Serves queued answers, in order, one request at a time; records every request."""

    backend = "scripted"
    base_url: str | None = None
    last_error: str | None = None

    def __init__(self, name: str = "scripted", n_ctx: int = 32768) -> None:
        self.name = name
        self.spec = ModelSpec(Path(name), n_ctx, 0, 512, None, None, ())
        self.state: ModelState = "ready"
        self.error: str | None = None
        self.report: LoadReport | None = None
        self.busy = False
        self.tokens_generated = 0
        self.last_decode_tokens_per_s = 0.0
        self.requests: list[GenerationRequest] = []
        self._answers: deque[Answer] = deque()
        self._lock = asyncio.Lock()
        # Tokens each prompt is said to hold (0: none, like a remote backend); lets a test see
        # the engine announce a prompt being read, as it does for a local model.
        self.prompt_tokens = 0

    def enqueue(self, *answers: Answer) -> None:
        self._answers.extend(answers)

    @property
    def remaining(self) -> int:
        return len(self._answers)

    @property
    def n_ctx(self) -> int:
        return self.spec.n_ctx

    @property
    def queue_depth(self) -> int:
        return 0

    def start(self) -> None:
        pass

    def refuse(self, error: ModelLoadError) -> None:
        self.state, self.error = "failed", str(error)

    def close(self) -> None:
        pass

    async def wait_ready(self) -> None:
        if self.state != "ready":
            raise ModelUnavailable(f"model {self.name} failed to load: {self.error}")

    def prepare(self, request: GenerationRequest, sampling: SamplingParams) -> PreparedRequest:
        tools = request.tools if request.tool_choice != "none" else None
        tokens = [0] * self.prompt_tokens
        return _ScriptedRequest(
            tokens,
            list(request.stop),
            replace(sampling),
            HERMES if tools else None,
            request=request,
        )

    def submit(self, prepared: PreparedRequest) -> GenerationStream:
        assert isinstance(prepared, _ScriptedRequest) and prepared.request is not None
        request = prepared.request
        self.requests.append(request)
        if not self._answers:
            raise ModelUnavailable(f"scripted model {self.name} has no answer left")
        answer = self._answers.popleft()
        job = Job(prepared, asyncio.get_running_loop())
        asyncio.get_running_loop().create_task(self._play(job, request, answer))
        return GenerationStream(job, prepared.tool_format)

    async def _play(self, job: Job, request: GenerationRequest, answer: Answer) -> None:
        async with self._lock:  # one request at a time, like a real worker
            started = time.monotonic()
            self.busy = True
            try:
                text, finish = await self._text(job, request, answer)
            finally:
                self.busy = False
            for start in range(0, len(text), PIECE_CHARS):
                job.emit(text[start : start + PIECE_CHARS])
            self.tokens_generated += len(text) // 4 + 1
            finished = time.monotonic()
            job.emit(
                GenerationResult(
                    text=text,
                    finish_reason=finish,
                    usage=Usage(prompt_tokens=1, completion_tokens=len(text) // 4 + 1),
                    timings=Timings(
                        job.enqueued_at and started - job.enqueued_at,
                        0.0,
                        finished - started,
                        started,
                        started,
                        finished,
                    ),
                    model=self.name,
                )
            )

    @staticmethod
    async def _text(job: Job, request: GenerationRequest, answer: Answer) -> tuple[str, str]:
        if isinstance(answer, Hang):
            while not job.cancel.is_set():
                await asyncio.sleep(0.01)
            return "", "cancelled"
        text = answer(request) if callable(answer) else answer
        return text, "stop"
