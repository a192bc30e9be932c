"""One request's sampling on the model's thread: llama.cpp's sampler chain, plus a grammar that
is checked after the chain has picked.

A grammar inside the chain is matched against every token of the vocabulary at every step (the
coder's edit grammars cost 2.4x an unconstrained token that way on the embedded model). Like
llama.cpp's own common sampler, an eager grammar here sees only the token the chain picked; the
whole vocabulary goes through it only when it refuses that token, and the chain then picks again
among what the grammar allows. Under greedy decoding that is exactly the grammar-first choice;
under a random draw it is the draw conditioned on the grammar, as in llama.cpp.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaSampler, LlamaTokenDataArray


class GrammarCheck:
    """A grammar sampler outside any chain: asks about one token, or filters a candidate array."""

    def __init__(self, vocab: Any, grammar: str, root: str = "root") -> None:
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar.encode("utf-8"), root.encode("utf-8")
        )
        if not self._sampler:
            raise ValueError("llama.cpp could not build the grammar")
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one, llama_cpp.llama_token_data_p), size=1, selected=-1
        )

    def allows(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(self._one_array))
        return not math.isinf(self._one[0].logit)

    def apply(self, candidates: llama_cpp.llama_token_data_array) -> None:
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(candidates))

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        if self._sampler:
            llama_cpp.llama_sampler_free(self._sampler)
            self._sampler = None


class RequestSampler:
    """Picks each next token of one sequence from its row of logits.

    `chain`: llama.cpp's chain without the eager grammar (biases, a lazy grammar, penalties,
    greedy or top-k/top-p/min-p/temperature/dist). `argmax_mask`: set when that chain is plain
    greedy; the argmax of the row with these tokens ruled out is then its pick, without copying
    the vocabulary into a candidate array.
    """

    def __init__(
        self,
        chain: LlamaSampler,
        n_vocab: int,
        grammar: GrammarCheck | None = None,
        argmax_mask: np.ndarray | None = None,
    ) -> None:
        self.chain = chain
        self.grammar = grammar
        self.argmax_mask = argmax_mask
        self.refused = 0  # picks the grammar refused (the whole vocabulary went through it)
        self._n_vocab = n_vocab
        self._candidates: LlamaTokenDataArray | None = None

    def sample(self, ctx: Any, row: int, logits: np.ndarray) -> int:
        """The next token from batch `row` (`logits`: that row, which may be changed)."""
        if self.grammar is None:
            if self.argmax_mask is not None:
                return self._argmax(logits)
            return llama_cpp.llama_sampler_sample(self.chain.sampler, ctx, row)
        token = self._argmax(logits) if self.argmax_mask is not None else self._pick(logits, False)
        if not self.grammar.allows(token):
            self.refused += 1
            token = self._pick(logits, True)
        self.grammar.accept(token)
        llama_cpp.llama_sampler_accept(self.chain.sampler, token)
        return token

    def _argmax(self, logits: np.ndarray) -> int:
        """The first highest logit, as llama.cpp's greedy sampler picks it."""
        assert self.argmax_mask is not None
        if self.argmax_mask.size:
            logits[self.argmax_mask] = -np.inf
        return int(logits.argmax())

    def _pick(self, logits: np.ndarray, constrained: bool) -> int:
        """The chain's pick over the whole row (after the grammar, when `constrained`)."""
        if self._candidates is None:
            self._candidates = LlamaTokenDataArray(n_vocab=self._n_vocab)
        candidates = self._candidates
        candidates.copy_logits(logits)
        array = candidates.candidates
        array.selected = -1
        if constrained:
            assert self.grammar is not None
            self.grammar.apply(array)
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(array))
        return int(candidates.candidates_data.id[array.selected])

    def close(self) -> None:
        self.chain.close()
        if self.grammar is not None:
            self.grammar.close()
