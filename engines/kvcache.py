"""One engine's KV cache: every sequence's keys/values in one slot pool, no per-step copy.

    pool [layers, 2, slots, kv_heads, capacity, head_dim]

A sequence owns one slot from its first forward until it is freed; its valid
positions are ``[0, length)`` of that slot (appending writes in place, cropping is
O(1): positions past ``length`` are garbage that the next append overwrites). A
forward over B sequences attends over ``[0, K)`` of their slots, K = max(length +
new tokens):

- slots ``r0 .. r0 + B - 1`` in order (the steady state: free slots are reused
  lowest first, and the engine orders rows by slot): a view of the pool; the
  model writes the new keys/values straight into it;
- any other set: one ``index`` copy of those B rows' first K positions; the new
  keys/values are written back afterwards.

The old layout copied every sequence's cache into a zero-filled padded buffer on
every forward, which was 40-60% of a decode step of the demo LLM at batch 16-64.

Memory: slots x capacity positions, where capacity is the longest sequence seen
since the pool was last empty (it doubles as needed and is released when the last
sequence is freed). Rows that are padding (a row with fewer new tokens than the
widest) write past their own length, and a crop leaves old positions behind: the
mask hides such garbage, which must stay finite (an additive mask does not hide a
NaN), so new memory is zeroed and a slot is cleared when a new sequence takes it.
"""

from __future__ import annotations

import heapq

import torch
from transformers.cache_utils import Cache, DynamicLayer

MIN_CAPACITY = 64  # positions per slot when the pool is first made


class SlotLayer(DynamicLayer):
    """One layer's batch K/V; ``update`` writes each row's new positions in place."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, write_at: torch.Tensor) -> None:
        super().__init__()
        self.keys, self.values = keys, values  # [B, kv_heads, K, head_dim]
        self.dtype, self.device = keys.dtype, keys.device
        self.write_at = write_at  # [B, T] position of each new token in its row
        self.rows = torch.arange(keys.shape[0], device=keys.device)[:, None]  # [B, 1]
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):  # type: ignore[override]
        # key_states [B, kv_heads, T, head_dim]; the indexed view is [B, T, kv_heads, head_dim]
        self.keys[self.rows, :, self.write_at] = key_states.transpose(1, 2)
        self.values[self.rows, :, self.write_at] = value_states.transpose(1, 2)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return int(self.keys.shape[-2])


class KVPool:
    """The cached keys/values and token ids of an engine's sequences (by seq id)."""

    def __init__(self, shape: tuple[int, int, int, int], dtype: torch.dtype, device: str) -> None:
        self.shape = shape  # (layers, 2, kv_heads, head_dim)
        self.dtype, self.device = dtype, device
        self.pool: torch.Tensor | None = None  # [layers, 2, slots, kv_heads, capacity, dim]
        self.slot: dict[int, int] = {}  # seq id -> slot
        self.tokens: dict[int, list[int]] = {}  # seq id -> token ids of its valid positions
        self._free: list[int] = []  # a min-heap of free slots below the high-water mark
        self._next = 0  # slots ever handed out since the pool was made

    # -- bookkeeping ---------------------------------------------------------
    def __contains__(self, seq_id: int) -> bool:
        return seq_id in self.slot

    def __len__(self) -> int:
        return len(self.slot)

    def length(self, seq_id: int) -> int:
        return len(self.tokens.get(seq_id, ()))

    def crop(self, seq_id: int, length: int) -> None:
        toks = self.tokens[seq_id]
        if not 0 <= length <= len(toks):
            raise ValueError(f"crop to {length}: the cache holds {len(toks)} tokens")
        del toks[length:]

    def free(self, seq_id: int) -> None:
        if self.slot.get(seq_id) is None:
            return
        heapq.heappush(self._free, self.slot.pop(seq_id))
        del self.tokens[seq_id]
        if not self.slot:  # idle: give the memory back
            self.pool, self._free, self._next = None, [], 0

    def add(self, seq_id: int) -> None:
        """Give a new sequence the lowest free slot (its cache is empty)."""
        if seq_id in self.slot:
            return
        if self._free:
            self.slot[seq_id] = heapq.heappop(self._free)
        else:
            self.slot[seq_id], self._next = self._next, self._next + 1
        self.tokens[seq_id] = []
        if self.pool is not None and self.slot[seq_id] < self.pool.shape[2]:
            self.pool[:, :, self.slot[seq_id]].zero_()  # no NaN left by a former owner

    def _reserve(self, need: int) -> torch.Tensor:
        """The pool with room for ``self._next`` slots of ``need`` positions each."""
        layers, two, heads, dim = self.shape
        old = self.pool
        slots, cap = (0, 0) if old is None else (old.shape[2], old.shape[4])
        if old is not None and self._next <= slots and need <= cap:
            return old
        new_slots = slots if self._next <= slots else max(2 * slots, self._next)
        new_cap = cap if need <= cap else max(2 * cap, need, MIN_CAPACITY)
        grown = torch.zeros(layers, two, new_slots, heads, new_cap, dim, dtype=self.dtype,
                            device=self.device)  # fmt: skip
        if old is not None:
            grown[:, :, :slots, :, :cap] = old
        self.pool = grown
        return grown

    # -- one forward ---------------------------------------------------------
    def batch(self, seq_ids: list[int], n_new: list[int]) -> Batch:
        """The K/V view for one forward over ``seq_ids`` (in slot order, see ``order``)."""
        for sid in seq_ids:
            self.add(sid)
        lens = [self.length(s) for s in seq_ids]
        t = max(n_new)
        k = max(lens) + t  # keys attended: [0, K) of each row (padding rows write inside it)
        pool = self._reserve(k)
        slots = [self.slot[s] for s in seq_ids]
        dev = self.device
        if slots == list(range(slots[0], slots[0] + len(slots))):
            kv, rows = pool[:, :, slots[0] : slots[0] + len(slots), :, :k], None
        else:
            rows = torch.tensor(slots, device=dev)
            kv = pool[:, :, rows, :, :k]  # a copy [layers, 2, B, kv_heads, K, dim]
        lengths = torch.tensor(lens, device=dev)  # [B]
        write_at = lengths[:, None] + torch.arange(t, device=dev)[None, :]  # [B, T]
        cache = Cache(layers=[SlotLayer(kv[i, 0], kv[i, 1], write_at) for i in range(kv.shape[0])])
        key = torch.arange(k, device=dev)  # [K]
        ends = lengths + torch.tensor(n_new, device=dev)  # [B] valid length after the forward
        allowed = (key[None, None, :] < ends[:, None, None]) & (
            key[None, None, :] <= write_at[:, :, None]
        )  # [B, T, K]: causal within the row, never a padding key
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=dev)
        mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)  # additive: sdpa and eager
        return Batch(cache, mask[:, None], write_at, kv, rows)

    def commit(self, seq_ids: list[int], new: list[list[int]], b: Batch) -> None:
        """After the forward: keep each row's new tokens (and, for a copied batch, write
        their keys/values back into the pool)."""
        if b.rows is not None:
            assert self.pool is not None
            r = torch.arange(len(seq_ids), device=self.device)[:, None]  # [B, 1]
            self.pool[:, :, b.rows[:, None], :, b.write_at] = b.kv[:, :, r, :, b.write_at]
        for sid, toks in zip(seq_ids, new, strict=True):
            self.tokens[sid].extend(toks)

    def order(self, seq_ids: list[int]) -> list[int]:
        """Indices of ``seq_ids`` sorted by slot (new sequences last), so that a batch of
        neighbouring slots is a view of the pool."""
        big = 1 << 62
        return sorted(range(len(seq_ids)), key=lambda i: self.slot.get(seq_ids[i], big))


class Batch:
    """What one forward over a set of slots needs."""

    def __init__(self, cache: Cache, mask: torch.Tensor, write_at: torch.Tensor,
                 kv: torch.Tensor, rows: torch.Tensor | None) -> None:  # fmt: skip
        self.cache = cache
        self.mask = mask  # [B, 1, T, K] additive attention mask
        self.write_at = write_at  # [B, T] absolute position of each new token (pad included)
        self.kv = kv  # [layers, 2, B, kv_heads, K, dim]: a pool view, or a copy
        self.rows = rows  # [B] slots when ``kv`` is a copy; None when it is a view


MAX_PAD_RATIO = 1.3  # a chunk may compute at most this many padded positions per real one


def plan_chunks(sizes: list[int], max_tokens: int, pad_free: int) -> list[list[int]]:
    """Group rows (by index) into forwards, longest new-token counts first.

    A chunk of B rows costs B x T padded positions (T = its longest row). Rows
    join the current chunk while that stays <= max_tokens and either <= pad_free
    (small batches: one forward beats several) or <= MAX_PAD_RATIO x real rows.
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    chunks: list[list[int]] = []
    real = 0
    for i in order:
        if chunks:
            width = sizes[chunks[-1][0]]
            padded, grown = (len(chunks[-1]) + 1) * width, real + sizes[i]
            if padded <= max_tokens and (padded <= pad_free or padded <= MAX_PAD_RATIO * grown):
                chunks[-1].append(i)
                real = grown
                continue
        chunks.append([i])
        real = sizes[i]
    return chunks
