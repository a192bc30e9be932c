"""Continuous batching: the requests on one model share each llama_decode as separate sequences.

The context has one unified KV cache of `n_ctx` cells and `n_parallel` sequence ids ("slots").
Each step builds one batch: the next token of every generating sequence (plus its prompt-lookup
draft, when speculative decoding is on), then prompt chunks of sequences still prefilling, up to
`n_batch` tokens. After the decode every sequence samples from its own rows of logits with its own
sampler chain (grammar, seed, temperature), so requests join and leave between steps and a
cancelled one frees its slot before the next step.

KV budget: a sequence is admitted only when its prompt plus its token budget (`max_tokens`, capped
by the context) fits next to the budgets of the running ones, so a decode never runs out of cells.
A finished sequence leaves its KV in its slot; a new request goes to the free slot sharing the
longest prefix with it (or copies that prefix from a busy slot), so follow-up turns and a task's
stages only prefill what is new. Idle slots' caches are dropped, least recently used first, when
the cells are needed.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from breakingwind.engine.logprobs import LogprobReader
from breakingwind.engine.lookup import PromptLookup
from breakingwind.engine.repetition import LoopGuard
from breakingwind.engine.request_sampler import RequestSampler
from breakingwind.engine.stops import StopMatcher
from breakingwind.engine.types import (
    FinishReason,
    GenerationResult,
    Timings,
    TokenLogprob,
    Usage,
)
from breakingwind.errors import GenerationFailed


@dataclass
class StepProfile:
    """Where the batched steps' wall time went, summed over steps (seconds); read it between
    requests (`ModelWorker.step_profile`). The device runs a step between `llama_decode` (which
    queues it) and the synchronisation before sampling, so `device_wait_s` is the device's time
    the host did not hide, and the other phases are the host's own per-step work."""

    steps: int = 0
    rows: int = 0  # batch rows decoded (generated tokens, drafts and prompt tokens)
    sampled: int = 0  # tokens sampled
    refused: int = 0  # picks an eager grammar refused (the whole vocabulary then went through it)
    build_s: float = 0.0  # filling the batch (drafts included)
    decode_s: float = 0.0  # inside llama_decode: graph build and launch (all of it on the CPU)
    device_wait_s: float = 0.0  # llama_synchronize: waiting for the device to finish the step
    sample_s: float = 0.0  # the sampler chains, logits to token (C: candidates, grammar, ...)
    emit_s: float = 0.0  # per token in Python: detokenise, stop strings, hand to the caller

    def since(self, earlier: StepProfile) -> StepProfile:
        """The steps between `earlier` (a copy taken before) and this one."""
        return StepProfile(
            **{name: getattr(self, name) - getattr(earlier, name) for name in _PROFILE_FIELDS}
        )

    def per_step_ms(self) -> dict[str, float]:
        """Each phase's mean milliseconds per step."""
        steps = max(self.steps, 1)
        phases = ("build_s", "decode_s", "device_wait_s", "sample_s", "emit_s")
        return {name[:-2]: getattr(self, name) * 1e3 / steps for name in phases}


_PROFILE_FIELDS = tuple(StepProfile.__dataclass_fields__)


@dataclass
class Slot:
    """One sequence id of the KV cache and the tokens whose KV it holds."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: float = 0.0


class Sequence:
    """One admitted request: its slot, sampler, tokens and streaming state."""

    def __init__(
        self,
        job: Any,
        slot: Slot,
        sampler: RequestSampler,
        cached: int,
        budget: int,
        logprobs: LogprobReader | None = None,
    ) -> None:
        prepared = job.prepared
        self.job = job
        self.slot = slot
        self.sampler: RequestSampler = sampler
        self.prompt_len = len(prepared.tokens)
        self.history = list(prepared.tokens)  # prompt + generated; the last one may await decode
        self.cached = cached
        self.n_past = cached  # tokens of `history` whose KV is in the slot
        self.budget = budget  # tokens this sequence may generate (its share of the KV cells)
        self.decoding = False  # True once the prompt is in and `history[-1]` awaits decode
        self.draft: list[int] = []
        self.lookup = (
            PromptLookup(self.history, prepared.sampling.draft_ngram)
            if prepared.sampling.draft_tokens > 0
            else None
        )
        self.drafted = self.accepted = 0
        guarded = prepared.sampling.repetition_guard
        self.guard = LoopGuard(self.prompt_len) if guarded else None
        self.reader = logprobs  # set when the request asked for log probabilities
        self.logprobs: list[TokenLogprob] = []
        self.looped = False
        self.matcher = StopMatcher(prepared.stop)
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pieces: list[str] = []
        self.generated = 0
        self.started = time.monotonic()
        self.prefilled_at: float | None = None
        self.first_at: float | None = None
        self.out_index = -1  # row of this sequence's first logits in the current batch

    @property
    def reserved(self) -> int:
        """KV cells this sequence may come to occupy."""
        return self.prompt_len + self.budget


class Batcher:
    """Runs the steps of continuous batching on the model's owner thread (not thread-safe)."""

    def __init__(
        self,
        llm: Any,
        n_parallel: int,
        n_batch: int,
        piece: Callable[[int], bytes],
        is_stop: Callable[[int], bool],
        model: str,
        on_finish: Callable[[Sequence, GenerationResult], None],
    ) -> None:
        self._llm = llm
        self._ctx = llm._ctx.ctx
        self._memory = llm._ctx.memory
        self.n_ctx = llm.n_ctx()
        self.n_batch = n_batch
        self.slots = [Slot(i) for i in range(n_parallel)]
        self.active: list[Sequence] = []
        self._piece = piece
        self._is_stop = is_stop
        self._on_finish = on_finish
        self._model = model
        self._n_vocab = llm.n_vocab()
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.profile = StepProfile()

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    # --- admission -------------------------------------------------------------------------

    def admit(self, job: Any, make_sampler: Callable[[Any], RequestSampler]) -> Sequence | None:
        """Start `job` in a free slot, or return None when no slot or KV room is free.

        The slot is chosen by `_slot_rank` (a follow-up turn's, a sibling request's, an empty
        one, the least recently used); the longest cached prefix held by any slot is then copied
        into it, which in a unified cache shares the cells.
        """
        tokens: list[int] = job.prepared.tokens
        budget = min(job.prepared.sampling.max_tokens, self.n_ctx - len(tokens))
        free = [slot for slot in self.slots if not slot.busy]
        if not free:
            return None
        slot = max(free, key=lambda s: _slot_rank(s, tokens))
        if not self._make_room(slot, len(tokens) + budget):
            return None
        limit = len(tokens) - 1  # decode at least one token: the sampler needs fresh logits
        keep = min(_common_prefix(slot.tokens, tokens), limit)
        donor, shared = max(
            ((other, min(self._cached_prefix(other, tokens), limit)) for other in self.slots),
            key=lambda pair: pair[1],
        )
        if shared > keep and donor is not slot:
            self._seq_rm(slot, 0)
            llama_cpp.llama_memory_seq_cp(self._memory, donor.seq_id, slot.seq_id, 0, shared)
            keep = shared
        else:
            self._seq_rm(slot, keep)
        slot.tokens = tokens[:keep]
        slot.busy = True
        sampling = job.prepared.sampling
        sampler = make_sampler(sampling)
        reader = LogprobReader(self._piece, sampling.logprobs) if sampling.logprobs >= 0 else None
        seq = Sequence(job, slot, sampler, keep, budget, reader)
        self.active.append(seq)
        return seq

    def _cached_prefix(self, slot: Slot, tokens: list[int]) -> int:
        """How many leading `tokens` have their KV in `slot` now."""
        running = next((seq for seq in self.active if seq.slot is slot), None)
        if running is None:
            return _common_prefix(slot.tokens, tokens)
        return min(_common_prefix(running.history, tokens), running.n_past)

    def _make_room(self, chosen: Slot, needed: int) -> bool:
        """Drop idle slots' caches (least recently used first) until `needed` cells fit."""
        used = sum(seq.reserved for seq in self.active)
        idle = sorted(
            (s for s in self.slots if not s.busy and s is not chosen and s.tokens),
            key=lambda s: s.last_used,
        )
        cached = sum(len(s.tokens) for s in idle)
        while used + cached + needed > self.n_ctx and idle:
            victim = idle.pop(0)
            cached -= len(victim.tokens)
            self._seq_rm(victim, 0)
            victim.tokens = []
        return used + cached + needed <= self.n_ctx

    def clear(self) -> None:
        """Forget every slot's cache (after an error or a direct use of the context)."""
        llama_cpp.llama_memory_clear(self._memory, True)
        for slot in self.slots:
            slot.tokens = []

    # --- one step --------------------------------------------------------------------------

    def step(self) -> None:
        """Drop cancelled sequences, decode one batch, sample, emit and finish sequences."""
        for seq in [s for s in self.active if s.job.cancel.is_set()]:
            self._finish(seq, "cancelled")
        if not self.active:
            return
        profile = self.profile
        started = time.perf_counter()
        batch = self._batch
        n = 0
        decoding = [seq for seq in self.active if seq.decoding]
        for i, seq in enumerate(decoding):
            after = len(decoding) - i - 1  # rows the other decoding sequences still need
            seq.draft = self._draft(seq, self.n_batch - n - after - 1)
            seq.out_index = n
            n = self._add(n, seq, [seq.history[-1], *seq.draft], seq.n_past, True)
        prefilling: list[tuple[Sequence, int]] = []
        for seq in self.active:
            if not seq.decoding and n < self.n_batch:
                chunk = seq.history[seq.n_past : min(seq.prompt_len, seq.n_past + self.n_batch - n)]
                ends_prompt = seq.n_past + len(chunk) == seq.prompt_len
                n = self._add(n, seq, chunk, seq.n_past, False)
                if ends_prompt:
                    batch.logits[n - 1] = True
                    seq.out_index = n - 1
                prefilling.append((seq, len(chunk)))
        batch.n_tokens = n
        built = time.perf_counter()
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status != 0:
            raise GenerationFailed(f"llama_decode failed with status {status}")
        decoded = time.perf_counter()
        llama_cpp.llama_synchronize(self._ctx)  # sampling would wait here anyway
        synced = time.perf_counter()
        profile.steps += 1
        profile.rows += n
        profile.build_s += built - started
        profile.decode_s += decoded - built
        profile.device_wait_s += synced - decoded
        for seq in decoding:
            self._sample(seq, seq.draft, seq.n_past + 1)
        now = time.monotonic()
        for seq, taken in prefilling:
            seq.n_past += taken
            if seq.n_past == seq.prompt_len:
                seq.prefilled_at = now
                seq.decoding = True
                self._sample(seq, [], seq.n_past)

    def _draft(self, seq: Sequence, room: int) -> list[int]:
        if seq.lookup is None:
            return []
        limit = min(
            seq.job.prepared.sampling.draft_tokens,
            room,
            seq.budget - seq.generated - 1,  # every drafted token may be kept: stay in budget
            self.n_ctx - seq.n_past - 1,
        )
        draft = seq.lookup.draft(limit)
        seq.drafted += len(draft)
        return draft

    def _add(self, n: int, seq: Sequence, tokens: list[int], pos: int, logits: bool) -> int:
        """Put `tokens` of `seq` at batch rows n.. (positions pos..); return the next row."""
        batch = self._batch
        seq_id = seq.slot.seq_id
        for i, token in enumerate(tokens):
            batch.token[n] = token
            batch.pos[n] = pos + i
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq_id
            batch.logits[n] = logits
            n += 1
        return n

    def _sample(self, seq: Sequence, draft: list[int], base: int) -> None:
        """Sample the next token(s) of `seq` (the KV holds `history[:base]` and `draft`); keep
        drafted tokens while the sampler picks them, drop the KV of the rest."""
        profile = self.profile
        clock = time.perf_counter
        for i in range(len(draft) + 1):
            started = clock()
            row = seq.out_index + i
            logits = self._logits(row)
            logprobs = seq.reader.log_softmax(logits) if seq.reader else None  # before any mask
            refused = seq.sampler.refused
            token = seq.sampler.sample(self._ctx, row, logits)
            sampled = clock()
            profile.refused += seq.sampler.refused - refused
            if logprobs is not None and not self._is_stop(token):
                entry = seq.reader.entry(logprobs, token)  # type: ignore[union-attr]
                seq.logprobs.append(entry)
                seq.job.emit(entry)  # before its text, so a stream's chunk carries both
            finish = self._accept(seq, token)
            profile.sampled += 1
            profile.sample_s += sampled - started
            profile.emit_s += clock() - sampled
            if finish is not None:
                self._finish(seq, finish, kv_valid=base + i)
                return
            if i < len(draft) and token == draft[i]:
                seq.accepted += 1
                continue
            seq.n_past = base + i
            if i < len(draft):  # the rest of the draft was wrong: drop its KV
                llama_cpp.llama_memory_seq_rm(self._memory, seq.slot.seq_id, seq.n_past, -1)
            seq.draft = []
            return

    def _logits(self, row: int) -> np.ndarray:
        """The logits of batch `row`, in place (valid until the next decode)."""
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, row)
        if not pointer:
            raise GenerationFailed(f"no logits for batch row {row}")
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))

    def _accept(self, seq: Sequence, token: int) -> FinishReason | None:
        """Emit `token`'s text; return why the sequence ends, if it does."""
        if self._is_stop(token):
            return "stop"
        seq.generated += 1
        seq.history.append(token)
        delta = seq.matcher.feed(seq.utf8.decode(self._piece(token)))
        if delta:
            if seq.first_at is None:
                seq.first_at = time.monotonic()
            seq.pieces.append(delta)
            seq.job.emit(delta)
        if seq.matcher.stopped:
            return "stop"
        if seq.guard is not None and seq.guard.looping(seq.history, seq.generated, delta):
            seq.looped = True
            return "stop"
        if seq.generated >= seq.budget:
            return "length"
        return None

    # --- leaving ---------------------------------------------------------------------------

    def _finish(self, seq: Sequence, finish: FinishReason, kv_valid: int | None = None) -> None:
        if finish != "cancelled" and not seq.matcher.stopped:
            tail = seq.matcher.feed(seq.utf8.decode(b"", final=True)) + seq.matcher.flush()
            if tail:
                seq.pieces.append(tail)
                seq.job.emit(tail)
        valid = seq.n_past if kv_valid is None else kv_valid
        self._seq_rm(seq.slot, valid)
        seq.slot.tokens = seq.history[:valid]
        seq.slot.busy = False
        seq.slot.last_used = time.monotonic()
        seq.sampler.close()
        self.active.remove(seq)
        finished = time.monotonic()
        prefilled = seq.prefilled_at or finished
        self._on_finish(
            seq,
            GenerationResult(
                text="".join(seq.pieces),
                finish_reason=finish,
                usage=Usage(seq.prompt_len, seq.generated, cached_tokens=seq.cached),
                timings=Timings(
                    queued_s=seq.started - seq.job.enqueued_at,
                    prefill_s=prefilled - seq.started,
                    decode_s=finished - prefilled,
                    started_at=seq.started,
                    first_token_at=seq.first_at,
                    finished_at=finished,
                ),
                model=self._model,
                looped=seq.looped,
                logprobs=seq.logprobs if seq.reader else None,
            ),
        )

    def fail_all(self, error: Exception) -> None:
        """End every running sequence with `error` and forget the caches."""
        for seq in list(self.active):
            seq.sampler.close()
            seq.slot.busy = False
            seq.job.emit(error)
        self.active.clear()
        self.clear()

    def _seq_rm(self, slot: Slot, start: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, start, -1)


def _common_prefix(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    if limit == 0:
        return 0
    differ = np.flatnonzero(
        np.asarray(a[:limit], dtype=np.intc) != np.asarray(b[:limit], dtype=np.intc)
    )
    return int(differ[0]) if differ.size else limit


SIMILAR_SHARE = 0.5  # a slot whose cache shares at least this much with a prompt is taken over


def _slot_rank(slot: Slot, tokens: list[int]) -> tuple[int, int, float]:
    """Rank a free slot for `tokens`, best first:

    1. a cache that is wholly a prefix of them (a follow-up turn), longest first;
    2. a cache that mostly is (SIMILAR_SHARE of it or more): a sibling of this request, such as
       the previous step of the same agent, whose own tail is not asked for again;
    3. an empty slot;
    4. the least recently used.

    Taking over a similar slot, rather than copying its prefix into another, keeps the other
    slots' caches: an agent whose steps share a long prefix (the coder's edit steps) would
    otherwise turn every slot over and evict the prefixes the next stage needs.
    """
    shared = _common_prefix(slot.tokens, tokens)
    if slot.tokens and shared == len(slot.tokens):
        return 3, shared, 0.0
    if slot.tokens and shared >= SIMILAR_SHARE * len(slot.tokens):
        return 2, shared, 0.0
    if not slot.tokens:
        return 1, 0, 0.0
    return 0, 0, -slot.last_used
