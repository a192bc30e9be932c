"""The engine: every agent's model, loaded once per distinct file, behind one async interface."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from breakingwind.config import AgentSettings, Settings
from breakingwind.engine.backend import ModelBackend
from breakingwind.engine.budget import current_budget
from breakingwind.engine.gguf_file import inspect_gguf
from breakingwind.engine.grammars import json_output_grammar
from breakingwind.engine.output import Reply, retry_messages
from breakingwind.engine.stream import GenerationStream
from breakingwind.engine.types import (
    GenerationRequest,
    GenerationResult,
    LoadReport,
    ModelSpec,
    ModelState,
    PreparedRequest,
    SamplingParams,
)
from breakingwind.engine.worker import ModelWorker
from breakingwind.errors import (
    MemoryBudgetExceeded,
    ModelLoadError,
    ModelUnavailable,
    QueueFull,
    StructuredOutputError,
    TokenBudgetExhausted,
)
from breakingwind.modelfiles.manifest import (
    Manifest,
    ResolvedModel,
    fallback_message,
    load_manifest,
    resolve_agent_models,
)

log = logging.getLogger(__name__)
GIB = 1024**3
# Who hears, in the current asyncio task, how many prompt tokens a generation reads before its
# first token (the pipeline shows "reading N tokens…" while a big model prefills). A context
# variable, so an observer set by one task never hears another task's generations.
prompt_observer: ContextVar[Callable[[int], None] | None] = ContextVar(
    "prompt_observer", default=None
)


@dataclass(frozen=True)
class AgentStatus:
    agent: str
    model_file: str
    fallback: bool
    state: ModelState
    error: str | None
    report: LoadReport | None
    queue_depth: int
    busy: bool
    tokens_generated: int
    last_decode_tokens_per_s: float
    backend: str = "local"
    base_url: str | None = None
    last_error: str | None = None


class Engine:
    """One `ModelWorker` per distinct model file; agents that name the same file share it.
    An agent with `backend = "openai"` gets its own `RemoteModel` and loads nothing here.

    `start()` begins loading every model in the background (each on its own thread) and returns at
    once; requests wait until their model is ready. `close()` stops the workers.

    Three ways to generate, one `GenerationRequest` (types.py) for all:
    - `reply(agent, request)` for protocol edges (chat completions, Responses, Messages): a
      `Reply` whose `chunks()` carry content and parsed tool calls; `reply.result` at the end has
      usage, finish_reason ("tool_calls" when the model called one) and the calls. Ask for JSON
      with `request.json_output` (output.py): the engine builds the grammar and checks the output
      at the end of the stream (`StructuredOutputError`). An edge only translates the chunks.
    - `complete(agent, request)` for a whole answer (agents, non-streamed responses): the same
      parsing, and JSON output that fails its check is sent back to the model once.
    - `stream(agent, request)` for the raw text deltas (benchmarks).
    """

    def __init__(self, settings: Settings, manifest: Manifest | None = None) -> None:
        self.settings = settings
        self.manifest = manifest or load_manifest()
        self.models: dict[str, ResolvedModel] = resolve_agent_models(settings, self.manifest)
        self._workers: dict[Path, ModelWorker] = {}
        self._remote: dict[str, ModelBackend] = {}
        self._by_agent: dict[str, ModelBackend] = {}
        # Called with (agent, seconds) after each `complete`, queueing and retries included.
        self.observers: list[Callable[[str, float], None]] = []
        sharing: dict[Path, list[str]] = {}
        for agent, model in self.models.items():
            sharing.setdefault(model.path, []).append(agent)
        for path, agents in sharing.items():
            spec = _model_spec(path, agents, self.models, settings)
            self._workers[path] = ModelWorker(
                spec, settings.engine.max_queue, settings.engine.grammar
            )
        for agent, agent_settings in settings.agents().items():
            if agent_settings.is_remote:
                # Imported only when used: an engine of local models needs no HTTP client.
                from breakingwind.engine.remote import RemoteModel

                remote = RemoteModel(agent, agent_settings, settings.engine.max_queue)
                self._by_agent[agent] = self._remote[agent] = remote
            else:
                self._by_agent[agent] = self._workers[self.models[agent].path]

    @property
    def agents(self) -> list[str]:
        return list(self._by_agent)

    def start(self) -> None:
        """Log fallbacks, apply the memory budget, and start loading every model."""
        for model in self.models.values():
            if model.fallback:
                log.warning(fallback_message(model, self.manifest))
        budget = self.settings.engine.memory_budget_gb
        planned = 0
        for worker in self._workers.values():
            try:
                worker.info = inspect_gguf(worker.spec.path)
                needed = worker.info.estimated_bytes(worker.spec.n_ctx)
                if budget is not None and planned + needed > budget * GIB:
                    raise MemoryBudgetExceeded(
                        f"{worker.name} needs about {needed / GIB:.2f} GiB (weights + KV cache at"
                        f" n_ctx {worker.spec.n_ctx}); with {planned / GIB:.2f} GiB already planned"
                        f" that exceeds engine.memory_budget_gb = {budget} GiB"
                    )
            except ModelLoadError as exc:
                log.error("%s (agents: %s): %s", worker.name, ", ".join(worker.spec.agents), exc)
                worker.refuse(exc)
                continue
            planned += needed
            worker.start()
        for remote in self._remote.values():
            remote.start()

    def close(self) -> None:
        for worker in {id(w): w for w in self._by_agent.values()}.values():
            worker.close()

    def replace_model(self, agent: str, backend: ModelBackend) -> ModelBackend:
        """Serve `agent` from `backend` from now on; returns the backend it replaces.

        Used for remote backends and, in tests, for scripted models (like llm's MockModel):
        everything above the generate call stays the real code.
        """
        previous = self.worker(agent)
        self._by_agent[agent] = backend
        return previous

    def worker(self, agent: str) -> ModelBackend:
        try:
            return self._by_agent[agent]
        except KeyError:
            raise ModelUnavailable(
                f"unknown agent {agent!r}; agents: {', '.join(self._by_agent)}"
            ) from None

    async def wait_ready(self) -> None:
        """Wait until every model has loaded or failed (failures are reported by `status`)."""
        for worker in self._by_agent.values():
            try:
                await worker.wait_ready()
            except ModelUnavailable:
                pass

    async def stream(
        self, agent: str, request: GenerationRequest, wait_for_room: bool = False
    ) -> GenerationStream:
        """Start a generation on `agent`'s model and return its raw stream of text deltas.

        The low-level call (benchmarks measure with it): tool-call markup stays in the text and
        `json_output` is not checked — protocol edges use `reply`, agents `complete`. Waits for
        the model to finish loading; raises `ModelUnavailable`, `ContextOverflow`, `GrammarError`
        or `QueueFull` before anything is generated. With `wait_for_room`, a full queue is tried
        again after each `QueueFull.retry_after_s` instead, for as long as the caller waits (the
        pipeline: a stage's time limit); HTTP requests get the `QueueFull` (a 503), and the
        stream ends in `QueueFull` if no slot and KV room free up within `engine.queue_wait_s`.
        `max_tokens` is cut to `engine.max_tokens_limit`. Inside a `token_budget` scope (a
        pipeline stage), `max_tokens` is also capped by what the scope has left,
        `TokenBudgetExhausted` is raised when nothing is left, and the repetition guard follows
        the scope; elsewhere it follows `engine.repetition_guard`.
        """
        worker = self.worker(agent)
        await worker.wait_ready()
        budget = current_budget()
        if budget is not None and budget.left <= 0:
            raise TokenBudgetExhausted(f"{agent}: the stage's {budget.limit} tokens are spent")
        guard = request.repetition_guard
        if guard is None:
            guard = budget.repetition_guard if budget else self.settings.engine.repetition_guard
        cap = budget.left if budget is not None else None
        # Building a grammar and rendering a prompt are CPU work: off the event loop.
        prepared = await asyncio.to_thread(
            _prepare, worker, request, self.settings, agent, guard, cap
        )
        if not wait_for_room:
            prepared = replace(prepared, max_wait_s=self.settings.engine.queue_wait_s)
        observer = prompt_observer.get()
        if observer is not None and prepared.tokens:  # a remote backend tokenizes elsewhere
            observer(len(prepared.tokens))
        while True:
            try:
                return worker.submit(prepared)
            except QueueFull as exc:
                if not wait_for_room:
                    raise
                await asyncio.sleep(exc.retry_after_s)

    async def count_tokens(self, agent: str, request: GenerationRequest) -> int:
        """The prompt tokens `request` takes on `agent`'s model (rendered as for generation).

        A remote backend renders on its server: 0 there."""
        worker = self.worker(agent)
        await worker.wait_ready()
        prepared = await asyncio.to_thread(
            _prepare, worker, request, self.settings, agent, False, None
        )
        return len(prepared.tokens)

    async def reply(
        self, agent: str, request: GenerationRequest, wait_for_room: bool = False
    ) -> Reply:
        """Start a generation for a protocol edge: a `Reply` whose chunks carry content and
        parsed tool calls, checked against `request.json_output` when it ends (see
        `engine/output.py`). Every edge (chat completions, Responses, Messages) translates these
        chunks into its own envelope; none parses model text itself. Errors as for `stream`.
        """
        stream = await self.stream(agent, request, wait_for_room)
        return Reply(stream, request)

    async def complete(
        self,
        agent: str,
        request: GenerationRequest,
        on_delta: Callable[[str], None] | None = None,
        wait_for_room: bool = False,
    ) -> GenerationResult:
        """Generate to the end and return the whole result, tool calls parsed out of the text.

        Output that fails `request.json_output` is sent back to the model once with the problem;
        a second failure raises `StructuredOutputError`. Output cut off by max_tokens is returned
        as it is (finish_reason "length"), as OpenAI does: the caller chose the limit.
        `on_delta` sees the raw text as it is generated (progress display, event streams);
        `wait_for_room` as for `stream`.
        """
        started = time.perf_counter()
        try:
            return await self._complete_checked(agent, request, on_delta, wait_for_room)
        finally:
            for observe in self.observers:
                observe(agent, time.perf_counter() - started)

    async def _complete_checked(
        self,
        agent: str,
        request: GenerationRequest,
        on_delta: Callable[[str], None] | None,
        wait_for_room: bool,
    ) -> GenerationResult:
        result, problem = await self._complete_once(agent, request, on_delta, wait_for_room)
        check = request.json_output
        if check is None or problem is None:
            return result
        assert request.messages is not None
        retry = replace(
            request, messages=retry_messages(request.messages, result.text, check.name, problem)
        )
        result, problem = await self._complete_once(agent, retry, on_delta, wait_for_room)
        if problem is not None:
            raise StructuredOutputError(
                f"output did not match {check.name}: {problem}", raw_output=result.text
            )
        return result

    async def _complete_once(
        self,
        agent: str,
        request: GenerationRequest,
        on_delta: Callable[[str], None] | None,
        wait_for_room: bool,
    ) -> tuple[GenerationResult, str | None]:
        stream = await self.stream(agent, request, wait_for_room)
        async with Reply(stream, request, check=False) as reply:
            async for chunk in reply.chunks():
                if on_delta is not None and chunk is not None and chunk.text:
                    on_delta(chunk.text)
        assert reply.result is not None
        budget = current_budget()
        if budget is not None:
            budget.used += reply.result.usage.completion_tokens
        return reply.result, reply.problem

    def status(self) -> dict[str, AgentStatus]:
        statuses = {}
        for agent, worker in self._by_agent.items():
            statuses[agent] = AgentStatus(
                agent=agent,
                model_file=str(worker.spec.path),
                fallback=agent in self.models and self.models[agent].fallback,
                state=worker.state,
                error=worker.error,
                report=worker.report,
                queue_depth=worker.queue_depth,
                busy=worker.busy,
                tokens_generated=worker.tokens_generated,
                last_decode_tokens_per_s=worker.last_decode_tokens_per_s,
                backend=worker.backend,
                base_url=worker.base_url,
                last_error=worker.last_error,
            )
        return statuses


def _prepare(
    worker: ModelBackend,
    request: GenerationRequest,
    settings: Settings,
    agent: str,
    repetition_guard: bool,
    max_tokens_cap: int | None,
) -> PreparedRequest:
    """Build the JSON output grammar a request asks for (within `engine.grammar`), cap its
    tokens at `engine.max_tokens_limit`, then let the backend render it."""
    if request.json_output is not None and request.grammar is None:
        request = replace(
            request,
            grammar=json_output_grammar(request.json_output, settings.engine.grammar),
            json_schema=request.json_output.json_schema,
        )
    sampling = _sampling(request, settings.agents()[agent])
    limit = settings.engine.max_tokens_limit
    if max_tokens_cap is not None:
        limit = min(limit, max_tokens_cap)
    sampling = replace(
        sampling, max_tokens=min(sampling.max_tokens, limit), repetition_guard=repetition_guard
    )
    return worker.prepare(request, sampling)


def _sampling(request: GenerationRequest, agent: AgentSettings) -> SamplingParams:
    """The request's sampling, each field it leaves unset taken from the agent's settings."""

    def pick(name: str) -> Any:
        value = getattr(request, name)
        return getattr(agent, name) if value is None else value

    return SamplingParams(
        max_tokens=request.max_tokens or agent.max_tokens,
        temperature=pick("temperature"),
        top_p=pick("top_p"),
        top_k=pick("top_k"),
        min_p=pick("min_p"),
        repeat_penalty=pick("repeat_penalty"),
        repeat_last_n=pick("repeat_last_n"),
        frequency_penalty=pick("frequency_penalty"),
        presence_penalty=pick("presence_penalty"),
        logit_bias=tuple(sorted((request.logit_bias or {}).items())),
        seed=request.seed,
        grammar=request.grammar,
        ignore_eos=request.ignore_eos,
        draft_tokens=agent.draft_tokens,
        draft_ngram=agent.draft_ngram,
        logprobs=-1 if request.logprobs is None else request.logprobs,
    )


def _model_spec(
    path: Path, agents: list[str], models: dict[str, ResolvedModel], settings: Settings
) -> ModelSpec:
    """How to load `path` for `agents`: the largest context any of them asked for, the first
    agent's other load settings."""
    first = settings.agents()[agents[0]]
    return ModelSpec(
        path=path,
        n_ctx=max(models[agent].n_ctx for agent in agents),
        n_gpu_layers=first.n_gpu_layers,
        n_batch=first.n_batch,
        threads=first.threads,
        flash_attn=first.flash_attn,
        chat_format=None if models[agents[0]].fallback else first.chat_format,
        agents=tuple(agents),
        n_parallel=max(settings.agents()[a].n_parallel or settings.engine.parallel for a in agents),
    )
