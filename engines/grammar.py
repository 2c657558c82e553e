"""Grammar-constrained decoding state, one matcher per sequence (llguidance; no torch).

    Grammars(tokenizer, vocab_size, eos_ids)   one per scheduler
      check(grammar)  -> "" or why it cannot be used   (the gateway, before admission)
      start(grammar)  -> SeqGrammar                     (admission; compiled once, copied)
    SeqGrammar: the grammar state of one sequence
      fill(ptr, nbytes)   allowed-token bitmask (1 bit per token id) at the current state
      advance(token)      consume one token; rollback(n) undoes the last n

Invariant: between scheduler steps a sequence's grammar has consumed exactly its
committed completion tokens. An engine step consumes the drafts it samples (each
draft's mask depends on the ones before it) and rolls all of them back before it
returns; ``Sequence.commit`` then advances the grammar by the tokens kept, whichever
model wrote them. A rolled-back draft leaves no trace, as in the caches.

llguidance is the grammar engine: no dependencies (xgrammar pulls torch and triton),
masks computed lazily per token from a JSON schema or a Lark grammar with no
compile-everything step (outlines-core builds a full index per schema first), and
native rollback; vLLM, SGLang and llama.cpp ship it as a structured-output backend.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from threading import Lock
from typing import Any

import llguidance
import llguidance.hf

MAX_GRAMMAR_CACHE = 64  # compiled grammars kept (a service sees a few schemas many times)
MAX_ERROR_CHARS = 300  # of llguidance's reason a grammar was refused (it can quote it all)


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """The llguidance grammar of a JSON schema, compact JSON (no optional whitespace:
    a small model cannot pad an answer with blank lines until it runs out of tokens)."""
    return llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False}
    )


def lark_grammar(lark: str) -> str:
    return llguidance.LLMatcher.grammar_from_lark(lark)


class SeqGrammar:
    """One sequence's grammar state (see the module invariant)."""

    def __init__(self, matcher: Any, words: int) -> None:
        self.matcher = matcher
        self.words = words  # int32 words per bitmask row: ceil(tokenizer vocab / 32)

    def fill(self, ptr: int, nbytes: int) -> None:
        """Write the allowed-token bitmask into ``nbytes`` bytes at address ``ptr``."""
        self.matcher.unsafe_compute_mask_ptr(ptr, nbytes)

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise ValueError(f"token {token} breaks the grammar: {self.matcher.get_error()}")

    def rollback(self, n: int) -> None:
        if n and not self.matcher.rollback(n):
            raise ValueError(f"grammar rollback of {n} tokens failed")

    def valid_prefix(self, tokens: list[int]) -> int:
        """How many of ``tokens`` in a row the grammar accepts (nothing is consumed)."""
        return int(self.matcher.validate_tokens(tokens))


class _TokenBytes:
    """A tokenizer as llguidance's TokenizerWrapper reads it: each id's bytes. For
    vocabularies whose decoder llguidance does not know (word- and character-level):
    each token decodes on its own to whole characters there."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.hf = tokenizer
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        special = set(tokenizer.all_special_ids)
        self.special_token_ids = sorted(special)
        names = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.tokens = [
            name.encode() if i in special else tokenizer.convert_tokens_to_string([name]).encode()
            for i, name in enumerate(names)
        ] + [b""] * max(0, vocab_size - len(tokenizer))

    def __call__(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))


def llg_tokenizer(tokenizer: Any, vocab_size: int, eos: list[int]) -> Any:
    """llguidance's view of a Hugging Face tokenizer (byte-level and SentencePiece
    decoders natively; any other through each token's own text)."""
    try:
        return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos or None)
    except ValueError:
        wrapped = llguidance.TokenizerWrapper(_TokenBytes(tokenizer, vocab_size))
        return llguidance.LLTokenizer(wrapped, n_vocab=vocab_size, eos_token=eos or None)


class Grammars:
    """The tokenizer view llguidance needs, and a cache of compiled grammars."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: frozenset[int]) -> None:
        self.hf = tokenizer
        self.tok = llg_tokenizer(tokenizer, vocab_size, sorted(eos_ids))
        self.words = (vocab_size + 31) // 32
        self._cache: OrderedDict[str, Any] = OrderedDict()  # grammar -> pristine matcher
        self._checked: OrderedDict[str, str] = OrderedDict()  # grammar -> check() answer
        self._lock = Lock()  # check() runs on gateway threads, start() on the step thread

    def literal(self, text: str) -> str:
        """``text`` as a Lark terminal: the token itself where the tokenizer has it as
        one special token (Qwen's ``<tool_call>``: a quoted string would only match
        it spelled out in ordinary tokens, which the model never writes), else a string."""
        ids = self.hf.encode(text, add_special_tokens=False)
        if len(ids) == 1 and self.tok.is_special_token(ids[0]):
            return f"<[{ids[0]}]>"
        return json.dumps(text)

    def check(self, grammar: str) -> str:
        """Why ``grammar`` cannot constrain decoding; "" when it can. Answers are
        cached: the gateway checks off the event loop, admission checks again."""
        with self._lock:
            if grammar in self._checked:
                return self._checked[grammar]
        try:
            why = llguidance.LLMatcher.validate_grammar(grammar, self.tok)
        except Exception as e:  # malformed grammar JSON
            why = f"{type(e).__name__}: {e}"
        why = " ".join(why.split())[:MAX_ERROR_CHARS]  # one line
        with self._lock:
            self._checked[grammar] = why
            while len(self._checked) > MAX_GRAMMAR_CACHE:
                self._checked.popitem(last=False)
        return why

    def start(self, grammar: str) -> SeqGrammar:
        """A fresh state of ``grammar``; ValueError if it does not compile."""
        with self._lock:
            pristine = self._cache.get(grammar)
            if pristine is not None:
                self._cache.move_to_end(grammar)
        if pristine is None:
            pristine = llguidance.LLMatcher(self.tok, grammar, log_level=0)
            if pristine.is_error():
                raise ValueError(f"grammar: {pristine.get_error()}")
            with self._lock:
                self._cache[grammar] = pristine
                while len(self._cache) > MAX_GRAMMAR_CACHE:
                    self._cache.popitem(last=False)
        return SeqGrammar(pristine.deep_copy(), self.words)
