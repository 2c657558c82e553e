"""Token log-probs in OpenAI's two shapes, from the engines' per-token log-probs.

Each committed token's ``TokenEvent`` carries its log-prob and top-k alternatives
under the model that wrote it (log_softmax of its raw logits, before temperature
and top-p; see ``engines.sampling.token_logprobs``). This module only names the
tokens and lays the numbers out:

    chat         choices[].logprobs = {"content": [{token, logprob, bytes,
                 top_logprobs: [{token, logprob, bytes}] (k best)}], "refusal": None}
    completions  choices[].logprobs = {tokens, token_logprobs, top_logprobs
                 ({token: logprob}: k best plus the chosen one), text_offset}

A token's ``bytes`` are its exact UTF-8 bytes (for byte-level BPE tokenizers a
token may hold part of a character; its ``token`` text then shows U+FFFD).
The completions shape keys ``top_logprobs`` by token text, so alternatives whose
texts are equal (several partial characters, all U+FFFD) share one entry, the
likelier one's; the chat shape lists each with its bytes. Streams carry the
entries of each chunk's tokens; ``text_offset`` counts characters of the token
strings from the start of the completion (of the prompt, with ``echo``). ``echo`` puts
the prompt's tokens first; the first has ``null`` log-prob and alternatives (OpenAI's
and vLLM's shape).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engines.types import TokenEvent, TokenLogprob

FLOOR = -9999.0  # log-probs below this (and -inf) are sent as this: JSON has no -inf


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, inverted: printable stand-in character -> byte."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    return dict(zip(chars, printable + extra, strict=True))


class TokenNames:
    """Token id -> (text, UTF-8 bytes), cached for one response. ``as_ids``: the text is
    ``token_id:<id>`` (vLLM's ``return_tokens_as_token_ids``), the bytes the token's."""

    def __init__(self, tokenizer: Any, as_ids: bool = False) -> None:
        self.tok = tokenizer
        self.as_ids = as_ids
        self._cache: dict[int, tuple[str, list[int]]] = {}
        self._bytes: dict[str, int] | None = None
        from tokenizers.decoders import ByteLevel

        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        if isinstance(decoder, ByteLevel):  # pieces spell bytes in GPT-2's alphabet
            self._bytes = _byte_decoder()

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        hit = self._cache.get(token_id)
        if hit is None:
            hit = self._cache[token_id] = self._name(token_id)
            if self.as_ids:
                hit = self._cache[token_id] = (f"token_id:{token_id}", hit[1])
        return hit

    def _name(self, token_id: int) -> tuple[str, list[int]]:
        if self._bytes is not None:
            piece = self.tok.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and all(c in self._bytes for c in piece):
                raw = bytes(self._bytes[c] for c in piece)
                return raw.decode("utf-8", errors="replace"), list(raw)
        text = self.tok.decode([token_id])
        return text, list(text.encode("utf-8"))


def _lp(x: float) -> float:
    return max(x, FLOOR)


def chat_entry(names: TokenNames, ev: TokenEvent) -> dict[str, Any]:
    """One ``logprobs.content`` item of a chat choice."""
    assert ev.token_id is not None and ev.logprob is not None
    text, raw = names(ev.token_id)
    top = []
    for tid, lp in ev.top_logprobs or []:
        t, b = names(tid)
        top.append({"token": t, "logprob": _lp(lp), "bytes": b})
    return {"token": text, "logprob": _lp(ev.logprob), "bytes": raw, "top_logprobs": top}


def chat_logprobs(names: TokenNames, events: Iterable[TokenEvent]) -> dict[str, Any]:
    return {"content": [chat_entry(names, ev) for ev in events], "refusal": None}


class CompletionLogprobs:
    """The legacy completions ``logprobs`` object; keeps ``text_offset`` across chunks."""

    def __init__(self, names: TokenNames) -> None:
        self.names = names
        self.offset = 0  # characters of the token strings given so far

    def of(self, events: Iterable[TokenEvent]) -> dict[str, Any]:
        out = _empty()
        for ev in events:
            assert ev.token_id is not None and ev.logprob is not None
            self._add(out, ev.token_id, ev.logprob, ev.top_logprobs or [])
        return out

    def of_prompt(self, ids: list[int], lps: list[TokenLogprob | None]) -> dict[str, Any]:
        """The prompt's entries (``echo``): the first token has no log-prob (None)."""
        out = _empty()
        for tid, lp in zip(ids, lps, strict=True):
            self._add(out, tid, None if lp is None else lp.logprob, None if lp is None else lp.top)
        return out

    def _add(
        self, out: dict[str, list[Any]], token_id: int, logprob: float | None, alts: Any
    ) -> None:
        text, _ = self.names(token_id)
        top: dict[str, float] | None = None
        if logprob is not None:
            top = {}
            for tid, lp in alts:
                top.setdefault(self.names(tid)[0], _lp(lp))
            top.setdefault(text, _lp(logprob))  # OpenAI: the chosen token is always there
        out["tokens"].append(text)
        out["token_logprobs"].append(None if logprob is None else _lp(logprob))
        out["top_logprobs"].append(top)
        out["text_offset"].append(self.offset)
        self.offset += len(text)


def _empty() -> dict[str, list[Any]]:
    return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


def joined(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Two logprobs objects of consecutive tokens as one (echo: prompt, then completion)."""
    return {key: a[key] + b[key] for key in a}
