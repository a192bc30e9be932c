"""What the engine needs from a model backend, whatever runs the model.

`ModelWorker` (llama-cpp-python in-process) is the production backend; `RemoteModel` sends an
agent's requests to an OpenAI-compatible server (`backend = "openai"`); `ScriptedModel` answers
from a script for tests of pipeline paths a tiny model cannot reach on purpose. The engine and
everything above it — queues, cancellation, tool-call parsing, the pipeline, HTTP — only ever see
this interface.
"""

from __future__ import annotations

from typing import Protocol

from breakingwind.engine.stream import GenerationStream
from breakingwind.engine.types import (
    GenerationRequest,
    LoadReport,
    ModelSpec,
    ModelState,
    PreparedRequest,
    SamplingParams,
)
from breakingwind.errors import ModelLoadError


class ModelBackend(Protocol):
    backend: str  # what /health shows: "local", "openai", "scripted"
    name: str
    spec: ModelSpec
    state: ModelState
    error: str | None
    report: LoadReport | None
    busy: bool
    tokens_generated: int
    last_decode_tokens_per_s: float
    base_url: str | None  # where a remote backend sends requests (never with credentials)
    last_error: str | None  # a recent request failure that marks the backend degraded

    @property
    def n_ctx(self) -> int: ...

    @property
    def queue_depth(self) -> int: ...

    def start(self) -> None:
        """Begin loading (in the background); requests wait in `wait_ready`."""

    def refuse(self, error: ModelLoadError) -> None:
        """Mark the backend failed without loading it."""

    def close(self) -> None: ...

    async def wait_ready(self) -> None:
        """Return once ready; raise `ModelUnavailable` if loading failed."""

    def prepare(self, request: GenerationRequest, sampling: SamplingParams) -> PreparedRequest:
        """Render and check a request (called in a worker thread); raise typed errors early."""

    def submit(self, prepared: PreparedRequest) -> GenerationStream:
        """Queue a prepared request; its deltas and result arrive through the stream.

        A backend that parses tool calls itself (remote) returns them in `result.tool_calls`
        and leaves `stream.tool_format` None; otherwise calls are in the text, in that format.
        """
