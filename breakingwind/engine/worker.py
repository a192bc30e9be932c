"""One model, one owner thread: the `Llama` object is created and used only on that thread.

A `Llama` object is not thread-safe, so requests reach it through a queue. Callers prepare a
request (render + tokenize, which only reads the vocabulary and is safe from any thread), submit it,
and read token deltas from a `GenerationStream`. Up to `n_parallel` requests generate together,
sharing each llama_decode (continuous batching, `batching.py`); the rest wait in the queue.
Cancelling the stream (stop iterating, `aclose`, task cancellation, garbage collection) sets a flag
the worker checks before every step, so a cancelled request's slot is free within one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal, TypeVar

import llama_cpp
import numpy as np
import psutil
from llama_cpp import Llama, LlamaGrammar
from llama_cpp import _internals as internals
from llama_cpp._internals import LlamaSampler

from breakingwind.config import GrammarLimits
from breakingwind.engine import llama_logs
from breakingwind.engine.batching import Batcher, Sequence, StepProfile
from breakingwind.engine.chat_template import ChatTemplate
from breakingwind.engine.gguf_file import GGUFInfo, inspect_gguf
from breakingwind.engine.grammars import DEFAULT_LIMITS, check_grammar_limits
from breakingwind.engine.request_sampler import GrammarCheck, RequestSampler
from breakingwind.engine.stream import GenerationStream, Job
from breakingwind.engine.tool_calls import tool_call_grammar
from breakingwind.engine.types import (
    GenerationRequest,
    GenerationResult,
    LoadReport,
    ModelSpec,
    ModelState,
    PreparedRequest,
    SamplingParams,
)
from breakingwind.errors import (
    BreakingWindError,
    ContextOverflow,
    EmptyPrompt,
    GenerationFailed,
    GrammarError,
    ModelLoadError,
    ModelUnavailable,
    QueueFull,
    SamplingError,
)

log = logging.getLogger(__name__)
llama_logs.install()

T = TypeVar("T")
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: pick a random seed


def compiled_backend() -> str:
    """The GPU backend llama-cpp-python was compiled with: 'CUDA', 'Metal', ... or 'CPU'."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    names = {part.split(":", 1)[0].strip() for part in info.split("|") if ":" in part}
    for backend in ("CUDA", "Metal", "Vulkan", "HIP", "SYCL"):
        if backend in names:
            return backend
    return "CPU"


def flash_attn_type(setting: Literal["auto"] | bool) -> int:
    """llama.cpp's `flash_attn_type` for a setting: forced on/off, or for "auto" llama.cpp's own
    AUTO (on where the device supports it for this model). On the CPU too: its flash attention
    skips the cells the mask hides, so the prefixes idle slots keep cached stop slowing every
    other sequence (docs/benchmarks.md, "Flash attention on the CPU")."""
    if setting == "auto":
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    return (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if setting
        else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )


_FLASH_ATTN_NAMES = {
    llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO: "auto",
    llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED: "off",
    llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED: "on",
}


class _Call:
    """A function to run on the owner thread with the `Llama` object (benchmarks, maintenance)."""

    __slots__ = ("fn", "loop", "future")

    def __init__(self, fn: Callable[[Llama], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def run(self, llm: Llama) -> None:
        try:
            result = self.fn(llm)
        except Exception as exc:
            self.loop.call_soon_threadsafe(_settle, self.future, None, exc)
        else:
            self.loop.call_soon_threadsafe(_settle, self.future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class ModelWorker:
    """Owns one loaded model on one thread and serves queued generation requests in order."""

    backend = "local"
    base_url: str | None = None
    last_error: str | None = None  # load failures are `state`/`error`; requests do not degrade

    def __init__(
        self, spec: ModelSpec, max_queue: int, grammar_limits: GrammarLimits = DEFAULT_LIMITS
    ) -> None:
        self.spec = spec
        self.grammar_limits = grammar_limits
        self.name = spec.path.name
        self.max_queue = max_queue
        self.n_parallel = max(1, min(spec.n_parallel, spec.n_batch))
        self.state: ModelState = "loading"
        self.error: str | None = None
        self.report: LoadReport | None = None
        self.info: GGUFInfo | None = None
        self.busy = False
        self.tokens_generated = 0
        self.last_decode_tokens_per_s = 0.0
        self.tokens_drafted = 0  # speculative decoding: tokens proposed by prompt lookup...
        self.drafts_accepted = 0  # ...and kept because the sampler picked them too
        self._queue: queue.Queue[Job | _Call | None] = queue.Queue()
        self._waiting = 0  # submitted requests not yet in a slot (the bound of max_queue)
        self._waiting_lock = threading.Lock()
        self._settled = threading.Event()  # set once loaded or failed
        self._thread = threading.Thread(target=self._serve, name=f"model:{self.name}", daemon=True)
        self._llm: Any = None
        self._batcher: Batcher | None = None
        self._template: ChatTemplate | None = None
        self._stop_tokens: frozenset[int] = frozenset()
        self._fim_tokens: tuple[int, ...] = ()  # (prefix, suffix, middle) when the model has them
        self._piece_cache: dict[int, bytes] = {}
        self._eog_cache: list[int] | None = None
        self._piece_buffer = ctypes.create_string_buffer(256)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def refuse(self, error: ModelLoadError) -> None:
        """Mark the model failed without loading it (e.g. over the memory budget)."""
        self._fail(str(error))

    def close(self, timeout: float = 10.0) -> None:
        """Stop: running and queued requests end with `ModelUnavailable`, then the model unloads."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._settled.is_set() and not self._thread.is_alive():
            # Never started (or died): without this, anyone in `wait_ready` waits forever.
            self._fail(f"model {self.name} was closed before it loaded")

    @property
    def supports_fill_in_middle(self) -> bool:
        return bool(self._fim_tokens)

    @property
    def n_ctx(self) -> int:
        return self.report.n_ctx if self.report else self.spec.n_ctx

    @property
    def step_profile(self) -> StepProfile:
        """A copy of where the batched steps' time has gone so far (`StepProfile`)."""
        return replace(self._batcher.profile) if self._batcher else StepProfile()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        return self._waiting

    async def wait_ready(self) -> None:
        """Wait until the model is loaded; raise `ModelUnavailable` if loading failed."""
        if not self._settled.is_set():
            await asyncio.to_thread(self._settled.wait)
        if self.state != "ready":
            raise ModelUnavailable(f"model {self.name} failed to load: {self.error}")

    # --- requests --------------------------------------------------------------------------

    def prepare(self, request: GenerationRequest, sampling: SamplingParams) -> PreparedRequest:
        """Render and tokenize `request`; raise `ContextOverflow` if it cannot fit. Thread-safe."""
        assert self._llm is not None and self._template is not None
        stop = list(request.stop)
        tool_format = None
        if request.messages is not None:
            rendered = self._template.render(request.messages, request.tools)
            if request.tools and request.tool_choice != "none":
                tool_format = self._template.tool_format
                try:
                    constraint = tool_call_grammar(
                        request.tools,
                        request.tool_choice,
                        tool_format,
                        request.parallel_tool_calls,
                        self.grammar_limits,
                    )
                except GrammarError:
                    raise
                except Exception as exc:  # the converter raises bare errors on odd schemas
                    message = f"the tools' parameter schemas are not usable: {exc}"
                    raise GrammarError(message) from None
                sampling = replace(
                    sampling,
                    grammar=constraint.grammar,
                    grammar_triggers=tuple(constraint.lazy_triggers),
                )
            text, add_bos = rendered.text + request.assistant_prefix, not rendered.has_bos
            stop += [s for s in rendered.stop if s and not self._is_stop_token_text(s)]
        else:
            text, add_bos = request.prompt or "", True
        if sampling.grammar is not None:
            self._check_grammar(sampling.grammar)
        n_vocab = self._llm.n_vocab()
        outside = [token for token, _ in sampling.logit_bias if token >= n_vocab]
        if outside:
            raise SamplingError(
                f"logit_bias names token {outside[0]}; the vocabulary has {n_vocab} tokens",
                param="logit_bias",
            )
        if request.prompt is not None and request.suffix is not None and self._fim_tokens:
            tokens = self._fill_in_middle(request.prompt, request.suffix)
        else:
            tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        n_ctx = self._llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise ContextOverflow(len(tokens), n_ctx)
        if not tokens:
            raise EmptyPrompt("the prompt is empty: there is nothing to continue")
        return PreparedRequest(tokens, stop, sampling, tool_format)

    def tokenize(self, text: str) -> list[int]:
        """`text` as this model's tokens, special tokens read as text. Thread-safe."""
        assert self._llm is not None
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _fill_in_middle(self, prefix: str, suffix: str) -> list[int]:
        pre, suf, mid = self._fim_tokens
        encode = self._llm.tokenize
        return [
            pre,
            *encode(prefix.encode(), add_bos=False, special=False),
            suf,
            *encode(suffix.encode(), add_bos=False, special=False),
            mid,
        ]

    def _check_grammar(self, grammar: str) -> None:
        """Parse the grammar once here: llama.cpp returns no sampler for a bad one, and adding
        that to a chain would crash the worker thread. Too large or too deeply nested a grammar
        never reaches the parser: its recursion would overflow the stack."""
        check_grammar_limits(grammar, self.grammar_limits)
        sampler = llama_cpp.llama_sampler_init_grammar(
            self._llm._model.vocab, grammar.encode("utf-8"), b"root"
        )
        if not sampler:
            raise GrammarError("the grammar could not be parsed")
        llama_cpp.llama_sampler_free(sampler)

    async def call_with_model(self, fn: Callable[[Llama], T]) -> T:
        """Run `fn(llm)` on the owner thread once no request is generating, and return its result.

        `fn` may use the context freely (sequence 0, `llm.eval`): the cached prefixes of every slot
        are forgotten afterwards.
        """
        await self.wait_ready()
        call = _Call(fn, asyncio.get_running_loop())
        self._queue.put(call)
        return await call.future

    async def clear_cache(self) -> None:
        """Forget every slot's cached prefix (benchmarks measure cold prefills this way)."""
        await self.call_with_model(lambda llm: None)

    def submit(self, prepared: PreparedRequest) -> GenerationStream:
        """Queue a prepared request; raise `QueueFull` past the bound."""
        if self.state == "failed":
            raise ModelUnavailable(f"model {self.name} failed to load: {self.error}")
        with self._waiting_lock:
            if self._waiting >= self.max_queue:
                raise QueueFull(f"model {self.name} has {self.max_queue} requests waiting")
            self._waiting += 1
        job = Job(prepared, asyncio.get_running_loop())
        self._queue.put(job)
        return GenerationStream(job, prepared.tool_format)

    # --- the owner thread ------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            self._load()
        except BreakingWindError as exc:
            self._fail(str(exc))
        except Exception as exc:  # llama.cpp reports load failures as ValueError/RuntimeError
            self._fail(f"{type(exc).__name__}: {exc}")
        waiting: deque[Job | _Call] = deque()
        while True:
            batcher = self._batcher
            running = bool(batcher and batcher.active)
            try:
                while True:  # block only when there is nothing to do
                    item = self._queue.get(block=not running and not waiting)
                    if item is None:
                        self._shut_down(waiting)
                        return
                    waiting.append(item)
                    running = True
            except queue.Empty:
                pass
            self._admit(waiting)
            if self._batcher is not None and self._batcher.active:
                self.busy = True
                self._step()
            self.busy = bool(self._batcher and self._batcher.active)

    def _admit(self, waiting: deque[Job | _Call]) -> None:
        """Start waiting requests, in order, while slots and KV room are free."""
        while waiting:
            item = waiting[0]
            if isinstance(item, _Call):
                if self._batcher is not None and self._batcher.active:
                    return  # a call runs alone, once the running requests are done
                waiting.popleft()
                self._run_call(item)
                continue
            if self.state != "ready" or self._batcher is None:
                waiting.popleft()
                self._left_queue()
                item.emit(ModelUnavailable(f"model {self.name} failed to load: {self.error}"))
                continue
            try:
                admitted = self._batcher.admit(item, self._sampler)
            except Exception as exc:  # a sampler that cannot be built fails this request only
                log.exception("could not start a request on %s", self.name)
                waiting.popleft()
                self._left_queue()
                item.emit(GenerationFailed(f"{type(exc).__name__}: {exc}"))
                continue
            if admitted is None:
                self._expire_waiting(waiting)
                return
            waiting.popleft()
            self._left_queue()

    def _expire_waiting(self, waiting: deque[Job | _Call]) -> None:
        """End requests that waited past their `max_wait_s` for a slot and KV room with
        `QueueFull`, so a client gets a 503 it can retry instead of its own timeout."""
        now = time.monotonic()
        for item in list(waiting):
            if not isinstance(item, Job):
                continue
            limit = item.prepared.max_wait_s
            if limit is not None and now - item.enqueued_at > limit:
                waiting.remove(item)
                self._left_queue()
                message = f"model {self.name} is busy: no slot or KV room within {limit:g}s"
                item.emit(QueueFull(message, retry_after_s=max(1, min(10, round(limit / 4)))))

    def _step(self) -> None:
        assert self._batcher is not None
        try:
            self._batcher.step()
        except BreakingWindError as exc:
            self._batcher.fail_all(exc)
        except Exception as exc:  # a llama.cpp failure must not kill the worker thread
            log.exception("generation failed on %s", self.name)
            self._batcher.fail_all(GenerationFailed(f"{type(exc).__name__}: {exc}"))

    def _run_call(self, call: _Call) -> None:
        if self.state != "ready":
            error = ModelUnavailable(f"{self.name} is not loaded")
            call.loop.call_soon_threadsafe(_settle, call.future, None, error)
            return
        call.run(self._llm)
        self._llm.n_tokens = 0
        if self._batcher is not None:
            self._batcher.clear()

    def _left_queue(self) -> None:
        with self._waiting_lock:
            self._waiting -= 1

    def _shut_down(self, waiting: deque[Job | _Call]) -> None:
        error = ModelUnavailable(f"{self.name}: the engine is shutting down")
        for item in waiting:
            if isinstance(item, Job):
                item.emit(error)
            else:
                item.loop.call_soon_threadsafe(_settle, item.future, None, error)
        if self._batcher is not None:
            self._batcher.fail_all(error)
            self._batcher.close()
        self._unload()

    def _finished(self, seq: Sequence, result: GenerationResult) -> None:
        """Count a finished sequence and hand its result to the caller."""
        self.tokens_generated += result.usage.completion_tokens
        self.tokens_drafted += seq.drafted
        self.drafts_accepted += seq.accepted
        if result.usage.completion_tokens > 1 and result.timings.decode_s > 0:
            self.last_decode_tokens_per_s = result.decode_tokens_per_s
        seq.job.emit(result)

    def _fail(self, message: str) -> None:
        self.state = "failed"
        self.error = message
        self._settled.set()

    def _load(self) -> None:
        started = time.monotonic()
        rss_before = psutil.Process().memory_info().rss
        self.info = info = self.info or inspect_gguf(self.spec.path)
        offload = llama_cpp.llama_supports_gpu_offload()
        backend = compiled_backend()
        flash = flash_attn_type(self.spec.flash_attn)
        try:
            llm = Llama(
                model_path=str(self.spec.path),
                n_ctx=self.spec.n_batch,  # replaced below by the multi-sequence context
                n_batch=self.spec.n_batch,
                n_gpu_layers=self.spec.n_gpu_layers if offload else 0,
                n_threads=self.spec.threads,
                n_threads_batch=self.spec.threads,
                verbose=False,
            )
            _open_batched_context(llm, self.spec.n_ctx, self.n_parallel, flash)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {self.spec.path}: {exc}") from None
        self._template = ChatTemplate(
            llm.metadata,
            bos_token=_token_text(llm, llm.token_bos()),
            eos_token=_token_text(llm, llm.token_eos()),
            chat_format=self.spec.chat_format,
        )
        self._stop_tokens = frozenset({llm.token_eos()})
        vocab = llm._model.vocab
        fim = (
            llama_cpp.llama_vocab_fim_pre(vocab),
            llama_cpp.llama_vocab_fim_suf(vocab),
            llama_cpp.llama_vocab_fim_mid(vocab),
        )
        self._fim_tokens = fim if min(fim) >= 0 else ()
        self._llm = llm
        self._batcher = Batcher(
            llm,
            self.n_parallel,
            self.spec.n_batch,
            self._piece,
            self._is_stop_token,
            self.name,
            self._finished,
        )
        layers = self.spec.n_gpu_layers if self.spec.n_gpu_layers >= 0 else info.n_layers + 1

        self.report = LoadReport(
            backend=backend,
            gpu_layers_offloaded=min(layers, info.n_layers + 1) if offload else 0,
            n_layers=info.n_layers,
            weights_bytes=int(llama_cpp.llama_model_size(llm.model)),
            kv_cache_bytes=info.kv_cache_bytes(llm.n_ctx()),
            rss_delta_bytes=psutil.Process().memory_info().rss - rss_before,
            load_s=time.monotonic() - started,
            chat_template=self._template.source,
            n_ctx=llm.n_ctx(),
            flash_attn=_FLASH_ATTN_NAMES[flash],
        )
        self.state = "ready"
        self._settled.set()
        log.info(
            "loaded %s for %s: %s", self.name, ", ".join(self.spec.agents), self.report.describe()
        )

    def _unload(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def _argmax_mask(self, sampling: SamplingParams, sampler: LlamaSampler) -> np.ndarray | None:
        """For a chain that is plain greedy (no lazy grammar, nothing but the `ignore_eos` bias
        before it), the tokens an argmax of the logits must skip; None for any other chain.
        Counting the chain's samplers keeps any sampler added to `_chain` (penalties...) on it."""
        if sampling.temperature > 0 or sampling.grammar_triggers:
            return None
        expected = 2 if sampling.ignore_eos else 1
        if llama_cpp.llama_sampler_chain_n(sampler.sampler) != expected:
            return None
        eog = self._eog_tokens() if sampling.ignore_eos else []
        return np.asarray(eog, dtype=np.intp)

    def _sampler(self, sampling: SamplingParams) -> RequestSampler:
        """One request's sampler: the chain, and an eager grammar checked after it
        (`engine/request_sampler.py`)."""
        chain = self._chain(sampling)
        n_vocab = self._llm.n_vocab()
        grammar = None
        if sampling.grammar is not None and not sampling.grammar_triggers:
            parsed = LlamaGrammar.from_string(sampling.grammar, verbose=False)
            grammar = GrammarCheck(self._llm._model.vocab, parsed._grammar, parsed._root)
        return RequestSampler(chain, n_vocab, grammar, self._argmax_mask(sampling, chain))

    def _chain(self, sampling: SamplingParams) -> LlamaSampler:
        """The sampler chain of one request, in llama.cpp's order: biases, a lazy grammar (tool
        calls; an eager one is checked after the chain), penalties (over the generated tokens;
        not under a grammar from the first token), then greedy, or top-k, top-p, min-p,
        temperature, dist."""
        sampler = LlamaSampler()
        n_vocab = self._llm.n_vocab()
        bias = dict(sampling.logit_bias)
        if sampling.ignore_eos:
            bias.update(dict.fromkeys(self._eog_tokens(), -1e30))
        if bias:
            sampler.add_logit_bias(n_vocab, bias)
        if sampling.grammar is not None and sampling.grammar_triggers:
            grammar = LlamaGrammar.from_string(sampling.grammar, verbose=False)
            sampler.add_grammar_lazy_patterns(
                self._llm._model, grammar, list(sampling.grammar_triggers), []
            )
        penalised = (
            sampling.repeat_penalty != 1.0
            or sampling.frequency_penalty != 0.0
            or sampling.presence_penalty != 0.0
        )
        # Output a grammar shapes from the first token (JSON) must repeat its quotes, braces and
        # keys; penalising them walks the model into legal but endless whitespace. A lazy
        # grammar (tool calls offered) leaves the text before a call to the penalties.
        constrained = sampling.grammar is not None and not sampling.grammar_triggers
        if penalised and not constrained and sampling.repeat_last_n != 0:
            last_n = sampling.repeat_last_n if sampling.repeat_last_n > 0 else self._llm.n_ctx()
            sampler.add_penalties(
                n_vocab,
                last_n,
                sampling.repeat_penalty,
                sampling.frequency_penalty,
                sampling.presence_penalty,
            )
        if sampling.temperature <= 0:
            sampler.add_greedy()
        else:
            if sampling.top_k > 0:
                sampler.add_top_k(sampling.top_k)
            _add_candidates(sampler)
            sampler.add_top_p(sampling.top_p, 1)
            if sampling.min_p > 0:
                sampler.add_min_p(sampling.min_p, 1)
            sampler.add_temp(sampling.temperature)
            sampler.add_dist(RANDOM_SEED if sampling.seed is None else sampling.seed)
        return sampler

    def _piece(self, token: int) -> bytes:
        piece = self._piece_cache.get(token)
        if piece is None:
            n = llama_cpp.llama_token_to_piece(
                self._llm._model.vocab, token, self._piece_buffer, len(self._piece_buffer), 0, False
            )
            piece = self._piece_buffer.raw[: max(n, 0)]
            self._piece_cache[token] = piece
        return piece

    def _is_stop_token_text(self, text: str) -> bool:
        """True when `text` is exactly one special token we already stop on."""
        ids = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return len(ids) == 1 and (ids[0] in self._stop_tokens or self._is_eog(ids[0]))

    def _eog_tokens(self) -> list[int]:
        if self._eog_cache is None:
            self._eog_cache = eog_tokens(self._llm)
        return self._eog_cache

    def _is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._llm._model.vocab, token))

    def _is_stop_token(self, token: int) -> bool:
        return token in self._stop_tokens or self._is_eog(token)


SAMPLING_CANDIDATES = 100  # tokens a temperature > 0 chain samples among


def _add_candidates(sampler: LlamaSampler) -> None:
    """Keep the SAMPLING_CANDIDATES most likely tokens before top_p, temperature and the draw:
    those then sort and normalise 100 candidates instead of the whole vocabulary (128-256K
    entries; a flat distribution made top_p sort nearly all of them). At the agents' temperature
    (0.2, which raises probabilities to the 5th power) a token ranked past 100 is never drawn in
    practice."""
    sampler.add_top_k(SAMPLING_CANDIDATES)


def eog_tokens(llm: Llama) -> list[int]:
    """Every end-of-generation token of the model's vocabulary (a scan of the whole vocabulary)."""
    vocab = llm._model.vocab
    return [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]


def _open_batched_context(llm: Llama, n_ctx: int, n_seq: int, flash_attn: int) -> None:
    """Give `llm` a context of `n_ctx` KV cells shared by `n_seq` sequences, with llama.cpp's
    `flash_attn_type` (`flash_attn_type()`).

    `Llama()` cannot set `n_seq_max`, `kv_unified` or an automatic flash attention, so it is
    built with a small context, which is freed first and replaced here. A unified cache lets any
    one request use the whole context, and sequences that share a prefix share its cells
    (`llama_memory_seq_cp`).
    """
    params = type(llm.context_params).from_buffer_copy(llm.context_params)
    params.n_ctx = n_ctx
    params.n_seq_max = n_seq
    params.kv_unified = True
    params.flash_attn_type = flash_attn
    params.n_outputs_max_per_seq = 0  # several logits rows per sequence: draft verification
    llm._ctx.close()
    llm._ctx = ctx = internals.LlamaContext(model=llm._model, params=params, verbose=False)
    llm._stack.enter_context(contextlib.closing(ctx))
    llm.context_params = params
    llm._n_ctx = ctx.n_ctx()
    llm.input_ids = np.ndarray((llm._n_ctx,), dtype=np.intc)
    llm.n_tokens = 0


def _token_text(llm: Any, token: int) -> str:
    return llm._model.token_get_text(token) if token >= 0 else ""
