"""A model served elsewhere: any OpenAI-compatible server (vLLM, llama-server, Ollama, LM Studio,
another BreakingWind) behind the same `ModelBackend` interface as the in-process worker.

Requests stream over `POST {base_url}/chat/completions` (or `/completions` for a raw prompt) into
the same `GenerationStream` the local worker feeds, so queues, cancellation and everything above
the engine stay the same code. Contracts a caller relies on:

- Cancelling the stream closes the HTTP response within ~50 ms; the server sees the disconnect.
- At most `max_concurrent` requests are in flight; the rest wait in line (`queue_depth`), and past
  `engine.max_queue` waiting a request gets `QueueFull`.
- Tool calls are sent natively (`tools`, `tool_choice`) and arrive as `ToolCall`s in
  `GenerationResult.tool_calls` (the text deltas carry only content; `tool_format` is None).
- A JSON schema goes out as `response_format` (`structured_output` says which form); the caller
  validates the output either way. A bare GBNF grammar cannot be sent: `GrammarError`.
- Failures are `BackendError`s, never a crash: 429/502/503/504 before any output are retried after
  the server's Retry-After (bounded by `max_retry_wait_s`, `retries` times), nothing is retried
  once output has started. A recent failure marks the backend degraded (`last_error`) until the
  next request succeeds.
- The API key is sent only as a Bearer header. It is never logged or put in an error message
  (text the server sends back is scrubbed of it).

Plain httpx (the `httpx2` distribution, already a dependency) rather than the `openai` SDK: the
SDK reads OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_ORG_ID from the environment when an argument is
missing (a user's OpenAI key could travel to a self-hosted server, and no module here reads the
environment on its own); its retry loop would sit between us and the 429/503 handling that must be
bounded and reported; and a malformed chunk must be told apart from a dropped connection, which
needs the raw stream. The streaming protocol itself is a few lines of SSE.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

from breakingwind.config import AgentSettings
from breakingwind.engine.stream import GenerationStream, Job
from breakingwind.engine.types import (
    FinishReason,
    GenerationRequest,
    GenerationResult,
    LoadReport,
    ModelSpec,
    ModelState,
    PreparedRequest,
    SamplingParams,
    Timings,
    ToolCall,
    Usage,
)
from breakingwind.errors import (
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    GrammarError,
    InvalidRequest,
    ModelLoadError,
    ModelUnavailable,
    QueueFull,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
# Statuses that say "this request was wrong", not "the server is unwell": no degraded mark.
REQUEST_FAULT_STATUS = frozenset({400, 413, 422})
CANCEL_POLL_S = 0.05
FIRST_BACKOFF_S = 1.0
MAX_SERVER_TEXT = 300
CONTEXT_KEYS = ("context_length", "max_model_len", "n_ctx", "context_window")
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


@dataclass(frozen=True)
class RemotePrepared(PreparedRequest):
    """A request as the JSON body to send, and the path it goes to under base_url."""

    path: str = "/chat/completions"
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Reply:
    """What has arrived so far on one stream (also what a cancelled request returns)."""

    pieces: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    chunks: int = 0
    finish: str | None = None
    usage: dict[str, Any] | None = None
    first_at: float | None = None
    done: bool = False

    def absorb(self, chunk: dict[str, Any], emit: Any) -> None:
        """Take one `chat.completion.chunk` or `text_completion` chunk."""
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if text:
                if self.first_at is None:
                    self.first_at = time.monotonic()
                self.pieces.append(text)
                self.chunks += 1
                emit(text)
            for call in (delta or {}).get("tool_calls") or []:
                self._absorb_call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def _absorb_call(self, call: dict[str, Any]) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.chunks += 1
        entry = self.calls.setdefault(int(call.get("index", len(self.calls))), {})
        function = call.get("function") or {}
        if call.get("id"):
            entry["id"] = call["id"]
        if function.get("name"):
            # OpenAI names the function in the first chunk only; some servers repeat it.
            entry.setdefault("name", function["name"])
        entry["arguments"] = entry.get("arguments", "") + (function.get("arguments") or "")

    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(
                index=i,
                id=entry.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                name=entry.get("name", ""),
                arguments=entry.get("arguments") or "{}",
            )
            for i, (_, entry) in enumerate(sorted(self.calls.items()))
        ]


class RemoteModel:
    """One agent's model on an OpenAI-compatible server (see the module docstring)."""

    backend = "openai"

    def __init__(self, agent: str, settings: AgentSettings, max_queue: int) -> None:
        assert settings.base_url is not None
        self.agent = agent
        self.settings = settings
        self.name = settings.model
        self.base_url = settings.base_url
        self.max_queue = max_queue
        self.spec = ModelSpec(Path(settings.model), settings.n_ctx, 0, 0, None, None, (agent,))
        self.state: ModelState = "loading"
        self.error: str | None = None
        self.report: LoadReport | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.tokens_generated = 0
        self.last_decode_tokens_per_s = 0.0
        self._n_ctx = settings.n_ctx
        self._n_ctx_settled = "n_ctx" in settings.model_fields_set
        self._active = 0
        self._waiting = 0
        self._jobs: set[Job] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # One limiter per event loop: production runs one loop; tests and `bench` drive the
        # engine from several, and an asyncio primitive cannot cross loops.
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    # --- ModelBackend ------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def queue_depth(self) -> int:
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._active > 0

    def start(self) -> None:
        if self.state == "loading":
            self.state = "ready"

    def refuse(self, error: ModelLoadError) -> None:
        self.state, self.error = "failed", str(error)

    def close(self) -> None:
        """Cancel every request in flight (safe from any thread)."""
        self.state, self.error = "failed", "the engine is shutting down"
        for job in list(self._jobs):
            job.cancel.set()

    async def wait_ready(self) -> None:
        """Ready at once; the first call also asks the server for the model's context length
        (when n_ctx is not configured). A server that cannot answer yet is not an error here."""
        if self.state == "failed":
            raise ModelUnavailable(f"model {self.name} is unavailable: {self.error}")
        if not self._n_ctx_settled:
            self._n_ctx_settled = True
            try:
                cards = await self.list_models()
            except BackendError as exc:
                log.warning("%s: could not read the context length: %s", self.agent, exc)
                return
            n_ctx = _context_length(cards.get(self.settings.model, {}))
            if n_ctx is not None:
                self._n_ctx = n_ctx

    def prepare(self, request: GenerationRequest, sampling: SamplingParams) -> PreparedRequest:
        """The JSON body for `request`; raise `GrammarError` for what cannot be sent."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        body.update(_sampling_options(sampling))
        if request.stop:
            body["stop"] = list(request.stop)
        if sampling.ignore_eos:
            body["ignore_eos"] = True  # vLLM's extension; other servers ignore it
        if request.grammar is not None and request.json_schema is None:
            raise GrammarError("a GBNF grammar cannot be sent to a remote server; give a schema")
        if sampling.logprobs >= 0:
            raise InvalidRequest(
                "log probabilities come from local models only; this agent's model is remote",
                param="logprobs",
            )
        if request.json_schema is not None:
            body.update(self._response_format(request.json_schema))
        if request.messages is None:
            body.update(prompt=request.prompt)
            if request.suffix is not None:
                body["suffix"] = request.suffix
            return RemotePrepared([], list(request.stop), sampling, path="/completions", body=body)
        body["messages"] = request.messages
        if request.tools and request.tool_choice != "none":
            body["tools"] = request.tools
            body["tool_choice"] = _tool_choice(request.tool_choice)
            if not request.parallel_tool_calls:
                body["parallel_tool_calls"] = False
        return RemotePrepared([], list(request.stop), sampling, path="/chat/completions", body=body)

    def submit(self, prepared: PreparedRequest) -> GenerationStream:
        """Start the request on the running loop; raise `QueueFull` past the bound."""
        assert isinstance(prepared, RemotePrepared)
        if self.state == "failed":
            raise ModelUnavailable(f"model {self.name} is unavailable: {self.error}")
        if self._waiting >= self.max_queue:
            raise QueueFull(f"model {self.name} has {self.max_queue} requests waiting")
        loop = asyncio.get_running_loop()
        job = Job(prepared, loop)
        self._waiting += 1  # counted now, so a burst of submits sees the line it makes
        task = loop.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return GenerationStream(job, None)

    # --- requests ----------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        slots = self._slots.setdefault(loop, asyncio.Semaphore(self.settings.max_concurrent))
        try:
            await slots.acquire()
        finally:
            self._waiting -= 1
        reply = _Reply()
        started = time.monotonic()
        if job.cancel.is_set():  # given up while it waited in line: send nothing
            slots.release()
            job.emit(self._result(job, reply, started, "cancelled"))
            return
        self._active += 1
        self._jobs.add(job)
        request = loop.create_task(self._stream(job, reply))
        watcher = loop.create_task(_cancel_when_set(job, request))
        try:
            await request
        except asyncio.CancelledError:
            job.emit(self._result(job, reply, started, "cancelled"))
            if _this_task_is_cancelled():
                raise
        except BackendError as exc:
            self._record_failure(exc)
            job.emit(exc)
        else:
            self.last_error = None
            job.emit(self._result(job, reply, started, None))
        finally:
            watcher.cancel()
            self._jobs.discard(job)
            self._active -= 1
            slots.release()

    async def _stream(self, job: Job, reply: _Reply) -> None:
        prepared = job.prepared
        assert isinstance(prepared, RemotePrepared)
        async with self._client() as client:
            attempt = 0
            while True:
                request = client.stream("POST", prepared.path, json=prepared.body)
                async with _translated(request, self) as response:
                    if response.status_code == 200:
                        await self._read_events(response, reply, job.emit)
                        return
                    wait = await self._retry_wait(response, attempt)
                await asyncio.sleep(wait)
                attempt += 1

    async def _retry_wait(self, response: httpx.Response, attempt: int) -> float:
        """How long to wait before retrying a refused request; raise when it is not retried."""
        text = self._scrub(await _server_message(response))
        status = response.status_code
        where = f"{self.agent}: {self.base_url} answered {status}"
        if status not in RETRYABLE_STATUS:
            raise BackendRejected(f"{where}: {text}", status_code=status)
        hint = _retry_after(response.headers.get("retry-after"))
        hint_s = None if hint is None else max(1, round(hint))
        if attempt >= self.settings.retries:
            raise BackendUnavailable(
                f"{where} after {attempt + 1} attempts: {text}", retry_after_s=hint_s
            )
        wait = FIRST_BACKOFF_S * 2**attempt if hint is None else hint
        if wait > self.settings.max_retry_wait_s:
            raise BackendUnavailable(
                f"{where} and asks to retry after {wait:.0f}s, more than max_retry_wait_s"
                f" = {self.settings.max_retry_wait_s:g}: {text}",
                retry_after_s=hint_s,
            )
        log.info("%s; retrying in %.1fs", where, wait)
        return wait

    async def _read_events(self, response: httpx.Response, reply: _Reply, emit: Any) -> None:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                reply.done = True
                return
            try:
                chunk = json.loads(data)
                if not isinstance(chunk, dict):
                    raise TypeError("a chunk is not a JSON object")
                if "error" in chunk:
                    raise _mid_stream_error(chunk["error"], self)
                reply.absorb(chunk, emit)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise BackendProtocolError(
                    f"{self.agent}: {self.base_url} sent a malformed stream chunk"
                    f" ({type(exc).__name__}: {exc}): {self._scrub(data)[:MAX_SERVER_TEXT]}"
                ) from None
        if reply.finish is None:
            raise BackendProtocolError(
                f"{self.agent}: {self.base_url} ended the stream before its last chunk"
                f" (after {reply.chunks} chunks)"
            )

    def _result(
        self, job: Job, reply: _Reply, started: float, finish: FinishReason | None
    ) -> GenerationResult:
        finished = time.monotonic()
        calls = reply.tool_calls() if finish is None else []
        if finish is None:
            finish = "tool_calls" if calls else FINISH_REASONS.get(reply.finish or "", "stop")
        usage = reply.usage or {}
        completion = int(usage.get("completion_tokens") or reply.chunks)
        details = usage.get("prompt_tokens_details") or {}
        first_at = reply.first_at
        decode_s = finished - first_at if first_at is not None else 0.0
        self.tokens_generated += completion
        if completion > 1 and decode_s > 0:
            self.last_decode_tokens_per_s = completion / decode_s
        return GenerationResult(
            text="".join(reply.pieces),
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=completion,
                cached_tokens=int(details.get("cached_tokens") or 0),
            ),
            timings=Timings(
                queued_s=started - job.enqueued_at,
                prefill_s=(first_at or finished) - started,
                decode_s=decode_s,
                started_at=started,
                first_token_at=first_at,
                finished_at=finished,
            ),
            model=self.name,
            tool_calls=calls,
        )

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        mode = self.settings.structured_output
        if mode == "json_schema":
            spec = {"name": "output", "schema": schema}
            return {"response_format": {"type": "json_schema", "json_schema": spec}}
        if mode == "json_object":
            return {"response_format": {"type": "json_object", "schema": schema}}
        return {}

    # --- the connection ----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        """A client for one request. Requests are long generations, so a connection each costs
        nothing measurable, and no pool is left tied to an event loop that has gone."""
        headers = {"Accept": "text/event-stream"}
        key = self.settings.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(
            connect=self.settings.connect_timeout_s,
            read=self.settings.read_timeout_s,
            write=self.settings.read_timeout_s,
            pool=None,
        )
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, trust_env=False
        )

    async def list_models(self) -> dict[str, dict[str, Any]]:
        """The server's `/models` list: model id -> its card."""
        async with self._client() as client:
            async with _translated(client.stream("GET", "/models"), self) as response:
                if response.status_code != 200:
                    text = self._scrub(await _server_message(response))
                    raise BackendRejected(
                        f"{self.agent}: {self.base_url}/models answered"
                        f" {response.status_code}: {text}",
                        status_code=response.status_code,
                    )
                try:
                    cards = json.loads(await response.aread())["data"]
                    return {card["id"]: card for card in cards}
                except (ValueError, TypeError, KeyError) as exc:
                    raise BackendProtocolError(
                        f"{self.agent}: {self.base_url}/models is not an OpenAI model list"
                        f" ({type(exc).__name__})"
                    ) from None

    def _record_failure(self, exc: BackendError) -> None:
        if isinstance(exc, BackendRejected) and exc.status_code in REQUEST_FAULT_STATUS:
            return
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("%s: %s", self.agent, self.last_error)

    def _scrub(self, text: str) -> str:
        """`text` from the server, cut short, with the API key blanked out if it was echoed."""
        key = self.settings.api_key()
        if key:
            text = text.replace(key, "***")
        return text[:MAX_SERVER_TEXT]


class _translated:
    """Enter an httpx stream, turning transport failures into `BackendError`s (also while the
    body is read inside the block)."""

    def __init__(self, stream: Any, backend: RemoteModel) -> None:
        self._stream = stream
        self._backend = backend

    async def __aenter__(self) -> httpx.Response:
        try:
            return await self._stream.__aenter__()
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self._backend, started=False) from None

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        try:
            await self._stream.__aexit__(kind, exc, tb)
        except httpx.HTTPError:
            pass  # closing a broken connection; the error that broke it is reported below
        if isinstance(exc, httpx.HTTPError):
            raise _transport_error(exc, self._backend, started=True) from None
        return False


def _transport_error(exc: httpx.HTTPError, backend: RemoteModel, started: bool) -> BackendError:
    where = f"{backend.agent}: {backend.base_url}"
    settings = backend.settings
    if isinstance(exc, httpx.ConnectTimeout):
        return BackendTimeout(f"{where}: no connection within {settings.connect_timeout_s:g}s")
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeout(f"{where}: no answer for {settings.read_timeout_s:g}s")
    if isinstance(exc, httpx.ConnectError):
        return BackendUnavailable(f"{where}: cannot connect ({_reason(exc)})")
    if started:
        return BackendUnavailable(f"{where}: the connection was lost mid-stream ({_reason(exc)})")
    return BackendUnavailable(f"{where}: request failed ({_reason(exc)})")


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _mid_stream_error(error: Any, backend: RemoteModel) -> BackendError:
    """An error the server sent inside the stream (as BreakingWind and vLLM do)."""
    if isinstance(error, dict):
        message, code = str(error.get("message", "")), str(error.get("code") or "")
    else:
        message, code = str(error), ""
    text = f"{backend.agent}: {backend.base_url} failed mid-stream: {backend._scrub(message)}"
    if code in ("backend_unavailable", "model_unavailable", "queue_full"):
        return BackendUnavailable(text)
    return BackendRejected(text, status_code=500)


def _this_task_is_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _cancel_when_set(job: Job, task: asyncio.Task[None]) -> None:
    """Cancel `task` (closing its HTTP stream) once the job's cancel flag is set."""
    while not job.cancel.is_set():
        await asyncio.sleep(CANCEL_POLL_S)
    task.cancel()


async def _server_message(response: httpx.Response) -> str:
    """The error text of a refused request: OpenAI's `error.message` when present."""
    raw = (await response.aread()).decode("utf-8", errors="replace")
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return raw.strip() or response.reason_phrase
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error or raw)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _context_length(card: dict[str, Any]) -> int | None:
    """A model card's context window, under whichever name the server uses."""
    for source in (card, card.get("meta") or {}):
        for key in CONTEXT_KEYS:
            if isinstance(source.get(key), int) and source[key] > 0:
                return source[key]
    return None


async def check_remote(backend: RemoteModel) -> tuple[bool, str]:
    """For `breakingwind doctor`: is the server reachable, does it list the model, does a
    one-token round trip work? Returns (ok, one line saying what was found)."""
    where = f"{backend.base_url} ({backend.settings.model})"
    try:
        cards = await backend.list_models()
    except BackendError as exc:
        return False, str(exc)
    if backend.settings.model not in cards:
        served = ", ".join(sorted(cards)) or "nothing"
        return False, f"{where}: the server does not list the model; it serves {served}"
    sampling = SamplingParams(max_tokens=1, temperature=0.0, top_p=1.0, seed=None, grammar=None)
    request = GenerationRequest(messages=[{"role": "user", "content": "Say OK."}])
    started = time.monotonic()
    try:
        async with backend.submit(backend.prepare(request, sampling)) as stream:
            result = await stream.collect()
    except BackendError as exc:
        return False, str(exc)
    elapsed = time.monotonic() - started
    return True, (
        f"{where}: listed, one-token round trip in {elapsed:.2f}s"
        f" ({result.usage.completion_tokens} token, n_ctx {backend.n_ctx})"
    )


# Sampling options sent only when they differ from "off": OpenAI's own API refuses the extensions
# (top_k, min_p, repeat_*), which vLLM, llama-server and llama-cpp-python's server take.
_OFF = {
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "top_k": 0,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
}


def _sampling_options(sampling: SamplingParams) -> dict[str, Any]:
    options: dict[str, Any] = {
        name: value for name, off in _OFF.items() if (value := getattr(sampling, name)) != off
    }
    if "repeat_penalty" in options:
        options["repeat_last_n"] = sampling.repeat_last_n
    if sampling.logit_bias:
        options["logit_bias"] = {str(token): bias for token, bias in sampling.logit_bias}
    return options
