"""Bookkeeping every engine backend shares: validating a step's work, and the
token-list "cache" of engines whose real cache lives elsewhere (a vLLM prefix
cache, a remote server).
"""

from __future__ import annotations

from engines.types import EngineInfo, SeqWork


def check_work(w: SeqWork, have: int, info: EngineInfo, *, check_ids: bool = True) -> None:
    """Refuse work the engine's cache or context cannot take.

    ``have`` is the length the engine holds for ``w.seq_id``; ``check_ids``
    off skips the vocabulary range check (left to a server that knows it).
    """
    if w.start != have:
        raise ValueError(f"seq {w.seq_id}: work starts at {w.start} but the cache holds {have}")
    if not w.new_tokens or w.n_out < 1:
        raise ValueError(f"seq {w.seq_id}: needs >= 1 new token and n_out >= 1")
    end = w.start + len(w.new_tokens) + w.n_out - 1  # positions used incl. the last output
    if end > info.max_context:
        raise ValueError(f"seq {w.seq_id}: {end} tokens exceed max_context={info.max_context}")
    bad = [t for t in w.new_tokens if not 0 <= t < info.vocab_size] if check_ids else []
    if bad:
        raise ValueError(f"seq {w.seq_id}: token ids {bad[:3]} outside [0, {info.vocab_size})")


class TokenCaches:
    """Per-sequence token lists standing in for a KV cache kept elsewhere.

    ``_seqs[seq_id]`` holds exactly the tokens the real cache was fed, so
    ``cache_len`` / ``crop`` / ``free`` keep the Engine protocol's meaning.
    """

    def __init__(self) -> None:
        self._seqs: dict[int, list[int]] = {}

    def cache_len(self, seq_id: int) -> int:
        return len(self._seqs.get(seq_id, ()))

    def crop(self, seq_id: int, length: int) -> None:
        if seq_id in self._seqs:
            del self._seqs[seq_id][length:]
        elif length:
            raise ValueError(f"crop seq {seq_id} to {length}: it has no cache")

    def free(self, seq_id: int) -> None:
        self._seqs.pop(seq_id, None)

    def num_caches(self) -> int:
        return len(self._seqs)

    def close(self) -> None:
        """Nothing to release here; engines holding connections override it."""
