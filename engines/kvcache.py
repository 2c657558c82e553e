"""One engine's KV cache: every sequence's keys/values in one slot pool, dense slots.

    pool [layers, 2, slots, kv_heads, capacity, head_dim]

A sequence owns one slot from its first forward until it is freed; its valid
positions are ``[0, length)`` of that slot (appending writes in place, cropping is
O(1): positions past ``length`` are garbage that the next append overwrites). Live
sequences always fill slots ``0 .. n-1``: freeing one moves the sequence in the
last slot into the hole (one copy of its valid positions). A forward over B
sequences attends over ``[0, K)`` of their slots, K = max(length + new tokens):

- one contiguous run of slots (the engine orders rows by slot; a batch of every
  live sequence is one): a view of the pool, written in place by the model;
- a decode step (one new token each) whose slots spread over a range at most
  ``SPAN_RATIO`` x B wide: a view of that range, the other sequences in it riding
  along as idle rows (a pad token each, outputs dropped, writes past their own
  length), cheaper than a copy on the CPU;
- otherwise, in an engine that runs ragged: direct, no copy (the layers write into
  the pool, attention reads views of it per sequence, ``engines.ragged``);
- otherwise: one copy of the B rows' first K positions, written back afterwards.

The old layout copied every sequence's cache into a zero-filled padded buffer on
every forward: 40-60% of a demo-LLM decode step at batch 16-64.

Garbage must stay finite (an additive mask hides a value, not a NaN): new memory
is zeroed, and the positions a former owner wrote (``dirty``) are zeroed before a
new sequence gets the slot. Memory: slots x capacity positions, the most sequences
and the longest sequence seen (or ``reserve``d), kept while the engine idles, as a
server that reserves its cache keeps it: new memory costs a page fault per 4 KiB on
first touch (on this project's VM a fresh 268 MB pool took 0.1-1 s to zero, a warm
one 10 ms), which every burst after an idle spell paid again. ``release`` gives it back.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from engines.ragged import Direct, direct_plan, flat_index

MIN_CAPACITY = 64  # positions per slot when the pool is first made
SPAN_RATIO = 2.0  # a spread batch runs as a view over its slot range up to this wide


def kv_shape(config: Any) -> tuple[int, int, int, int]:
    """(layers, 2, kv_heads, head_dim) of a decoder's cache, from its (text) config."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return (config.num_hidden_layers, 2, kv_heads, head_dim)


class SlotLayer(DynamicLayer):
    """One layer's batch K/V; ``update`` writes each row's new positions in place."""

    def __init__(
        self, keys: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, write_at: torch.Tensor
    ) -> None:
        super().__init__()
        self.keys, self.values = keys, values  # [R, kv_heads, K, head_dim]
        self.dtype, self.device = keys.dtype, keys.device
        self.rows = rows  # [R, 1] row indices (ragged: [1, N]), shared by every layer
        self.write_at = write_at  # [R, T] position of each new token in its row (ragged: [1, N])
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):  # type: ignore[override]
        # key_states [R, kv_heads, T, head_dim]; the indexed view is [R, T, kv_heads, head_dim]
        self.keys[self.rows, :, self.write_at] = key_states.transpose(1, 2)
        self.values[self.rows, :, self.write_at] = value_states.transpose(1, 2)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return int(self.keys.shape[-2])


class Batch:
    """What one forward needs. R rows run (R >= B: idle rows of a span view)."""

    def __init__(
        self,
        cache: Cache,
        mask: torch.Tensor,
        write_at: torch.Tensor,
        kv: torch.Tensor,
        index: list[int],
        copied: torch.Tensor | None,
        flat: tuple[torch.Tensor, torch.Tensor] | None = None,
        direct: list[Direct] | None = None,
    ) -> None:
        self.cache = cache
        self.mask = mask  # [R, 1, T, K] additive attention mask
        self.write_at = write_at  # [R, T] absolute position of each new token (pad included)
        self.kv = kv  # [layers, 2, R, kv_heads, K, dim]: a pool view, or a copy
        self.index = index  # forward row of each sequence, in the order they were given
        self.copied = copied  # [R] slots when ``kv`` is a copy; None when it is a view
        self.flat = flat  # ragged: ([N] row, [N] offset) of each real new token; else None
        self.direct = direct  # direct: per sequence, where attention reads (``kv`` is the pool)


class KVPool:
    """The cached keys/values and token ids of an engine's sequences (by seq id)."""

    def __init__(self, shape: tuple[int, int, int, int], dtype: torch.dtype, device: str) -> None:
        self.shape = shape  # (layers, 2, kv_heads, head_dim)
        self.dtype, self.device = dtype, device
        self.pool: torch.Tensor | None = None  # [layers, 2, slots, kv_heads, capacity, dim]
        self.slot: dict[int, int] = {}  # seq id -> slot
        self.owner: list[int] = []  # slot -> seq id; slots 0 .. n-1 are the n live ones
        self.tokens: dict[int, list[int]] = {}  # seq id -> token ids of its valid positions
        self.dirty: list[int] = []  # per pool slot: positions [0, dirty) may hold old data

    # -- bookkeeping ---------------------------------------------------------
    def __contains__(self, seq_id: int) -> bool:
        return seq_id in self.slot

    def __len__(self) -> int:
        return len(self.owner)

    def length(self, seq_id: int) -> int:
        return len(self.tokens.get(seq_id, ()))

    def usage(self) -> tuple[int, int, int]:
        """(live tokens, allocated positions, allocated bytes). Read from another thread
        (metrics) while the step thread may change it: copies first, retries a torn read."""
        for _ in range(3):
            try:
                pool, live = self.pool, sum(map(len, list(self.tokens.values())))
            except RuntimeError:  # the dict changed size during the copy
                continue
            if pool is None:
                return live, 0, 0
            return live, pool.shape[2] * pool.shape[4], pool.numel() * pool.element_size()
        return 0, 0, 0

    def crop(self, seq_id: int, length: int) -> None:
        toks = self.tokens[seq_id]
        if not 0 <= length <= len(toks):
            raise ValueError(f"crop to {length}: the cache holds {len(toks)} tokens")
        del toks[length:]

    @torch.inference_mode()
    def add(self, seq_id: int) -> None:
        """Give a new sequence the first slot past the live ones (its cache is empty)."""
        if seq_id in self.slot:
            return
        s = len(self.owner)
        self.slot[seq_id] = s
        self.owner.append(seq_id)
        self.tokens[seq_id] = []
        if self.pool is not None and s < len(self.dirty) and self.dirty[s]:
            self.pool[:, :, s, :, : self.dirty[s]].zero_()  # nothing left by a former owner
            self.dirty[s] = 0

    @torch.inference_mode()  # the pool is an inference tensor (made inside a step)
    def free(self, seq_id: int) -> None:
        """Drop a sequence; the one in the last slot moves into its slot."""
        s = self.slot.pop(seq_id, None)
        if s is None:
            return
        del self.tokens[seq_id]
        last = len(self.owner) - 1
        mover = self.owner.pop()
        if s != last:
            self.slot[mover], self.owner[s] = s, mover
            n = len(self.tokens[mover])
            if self.pool is not None:
                self.pool[:, :, s, :, :n] = self.pool[:, :, last, :, :n]
                if self.dirty[s] > n:
                    self.pool[:, :, s, :, n : self.dirty[s]].zero_()
                self.dirty[s] = n

    @torch.inference_mode()
    def reserve(self, slots: int, positions: int) -> None:
        """Grow the pool now to at least ``slots`` x ``positions`` (touching it once), so
        that forwards up to that size allocate nothing."""
        self._reserve(positions, slots)

    def release(self) -> None:
        """Give the memory back when no sequence is live (else keep it)."""
        if not self.owner:
            self.pool, self.dirty = None, []

    def _reserve(self, need: int, want_slots: int = 0) -> torch.Tensor:
        """The pool with room for every live slot (and ``want_slots``), ``need`` positions
        each."""
        layers, two, heads, dim = self.shape
        old, n = self.pool, max(len(self.owner), want_slots)
        slots, cap = (0, 0) if old is None else (old.shape[2], old.shape[4])
        if old is not None and n <= slots and need <= cap:
            return old
        new_slots = slots if n <= slots else max(2 * slots, n)
        new_cap = cap if need <= cap else max(2 * cap, need, MIN_CAPACITY)
        grown = torch.empty(layers, two, new_slots, heads, new_cap, dim, dtype=self.dtype,
                            device=self.device)  # fmt: skip
        if old is not None:
            grown[:, :, :slots, :, :cap] = old
        grown[:, :, :slots, :, cap:].zero_()  # every byte written once: old data or zeros
        grown[:, :, slots:].zero_()
        self.dirty += [0] * (new_slots - len(self.dirty))
        self.pool = grown
        return grown

    # -- one forward ---------------------------------------------------------
    def viewable(self, seq_ids: list[int], n_new: list[int]) -> bool:
        """Whether a forward over ``seq_ids`` would run on a view of the pool (new
        sequences take the next free slots, in the order given)."""
        nxt, slots = len(self.owner), []
        for sid in seq_ids:
            slots.append(self.slot.get(sid, nxt))
            nxt += sid not in self.slot
        return _span(slots, n_new)

    def batch(self, seq_ids: list[int], n_new: list[int], ragged: bool = False) -> Batch:
        """The K/V for one forward over ``seq_ids`` (a view where it can be). Ragged:
        an uneven batch feeds only its real new tokens, as one row, and a batch that is
        not a view runs direct (``engines.ragged``)."""
        for sid in seq_ids:
            self.add(sid)
        slots = [self.slot[s] for s in seq_ids]
        span = _span(slots, n_new)
        if ragged and not span:
            return self._direct(seq_ids, slots, n_new)
        lo, hi = min(slots), max(slots)
        flat_feed = ragged and sum(n_new) < len(n_new) * max(n_new)  # uneven: skip the padding
        rows = list(range(lo, hi + 1)) if span else slots  # the forward's rows, as slots
        at = {s: r for r, s in enumerate(rows)}
        index = [at[s] for s in slots]
        new = [1] * len(rows)  # idle rows: one pad token, attending to their own cache
        for r, n in zip(index, n_new, strict=True):
            new[r] = n
        lens = [len(self.tokens[self.owner[s]]) for s in rows]
        t = max(n_new)
        k = max(lens) + t  # keys attended: [0, K) of each row (padding rows write inside it)
        pool = self._reserve(k)
        for s, n in zip(rows, lens, strict=True):
            self.dirty[s] = max(self.dirty[s], n + t)
        dev = self.device
        copied = None
        if span:
            kv = pool[:, :, lo : hi + 1, :, :k]
        else:
            copied = torch.tensor(rows, device=dev)
            kv = pool[:, :, :, :, :k].index_select(2, copied)  # [layers, 2, B, kv_heads, K, dim]
        lengths = torch.tensor(lens, device=dev)  # [R]
        write_at = lengths[:, None] + torch.arange(t, device=dev)[None, :]  # [R, T]
        idx = torch.arange(len(rows), device=dev)[:, None]  # [R, 1]
        at, flat = write_at, None
        if flat_feed:  # the model's K/V come as [1, kv_heads, N, dim]: one index per token
            flat = flat_index(index, n_new, dev)
            idx, at = flat[0][None], write_at[flat][None]  # [1, N], [1, N]
        cache = Cache(layers=[SlotLayer(kv[i, 0], kv[i, 1], idx, at) for i in range(kv.shape[0])])
        key = torch.arange(k, device=dev)  # [K]
        ends = lengths + torch.tensor(new, device=dev)  # [R] valid length after the forward
        allowed = (key[None, None, :] < ends[:, None, None]) & (
            key[None, None, :] <= write_at[:, :, None]
        )  # [R, T, K]: causal within the row, never a padding key
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=dev)
        mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)  # additive: sdpa and eager
        return Batch(cache, mask[:, None], write_at, kv, index, copied, flat)

    def _direct(self, seq_ids: list[int], slots: list[int], n_new: list[int]) -> Batch:
        """A forward whose layers write each new key/value into its slot of the pool and
        whose attention reads the pool per sequence: nothing copied, nothing padded."""
        lens = [len(self.tokens[s]) for s in seq_ids]
        pool = self._reserve(max(n + t for n, t in zip(lens, n_new, strict=True)))
        for s, n, t in zip(slots, lens, n_new, strict=True):
            self.dirty[s] = max(self.dirty[s], n + t)
        dev = self.device
        flat = flat_index(list(range(len(seq_ids))), n_new, dev)  # forward row = order given
        write_at = torch.tensor(lens, device=dev)[:, None] + torch.arange(max(n_new), device=dev)
        at = write_at[flat][None]  # [1, N] position of each new token in its slot
        in_slot = torch.tensor(slots, device=dev)[flat[0]][None]  # [1, N] its slot
        cache = Cache(
            layers=[SlotLayer(pool[i, 0], pool[i, 1], in_slot, at) for i in range(pool.shape[0])]
        )
        unused = torch.zeros(1, 1, 1, 1, dtype=self.dtype, device=dev)  # a 4D mask passes as is
        plan = direct_plan(slots, lens, n_new, dev)
        return Batch(cache, unused, write_at, pool, list(range(len(seq_ids))), None, flat, plan)

    def commit(self, seq_ids: list[int], new: list[list[int]], b: Batch) -> None:
        """After the forward: keep each sequence's new tokens (and, for a copied batch,
        write their keys/values back into the pool)."""
        for r, sid, toks in zip(b.index, seq_ids, new, strict=True):
            if b.copied is not None:  # one slice copy per row: cheaper than index_put
                assert self.pool is not None
                n0, n1 = len(self.tokens[sid]), len(self.tokens[sid]) + len(toks)
                self.pool[:, :, self.slot[sid], :, n0:n1] = b.kv[:, :, r, :, n0:n1]
            self.tokens[sid].extend(toks)

    def order(self, seq_ids: list[int]) -> list[int]:
        """Indices of ``seq_ids`` sorted by slot (new sequences last, in the order given),
        so that a batch of neighbouring slots is a view of the pool."""
        big = 1 << 62
        return sorted(range(len(seq_ids)), key=lambda i: self.slot.get(seq_ids[i], big))


def _span(slots: list[int], n_new: list[int]) -> bool:
    """One run of slots, or a decode step over a range at most SPAN_RATIO x B wide."""
    width = max(slots) - min(slots) + 1
    return width == len(slots) or (max(n_new) == 1 and width <= SPAN_RATIO * len(slots))
