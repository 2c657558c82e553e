"""Per-sequence KV caches and the padded batch view one forward pass uses.

Each sequence owns a buffer ``kv [layers, 2, kv_heads, capacity, head_dim]``
whose first ``length`` positions are valid (appending is amortised O(new),
cropping is O(1)). For a forward over B sequences the caches are gathered
into one left-padded batch buffer::

    buf [layers, 2, B, kv_heads, P + T, head_dim]
         row b: [ zeros (P - L_b) | past_b (L_b) | new_b (n_b) | pad (T - n_b) ]

where P = max L_b and T = max n_b. The model writes the new keys/values in
place at [P, P + T) (``BatchLayer.update``); afterwards each row's first n_b
new positions are appended to its sequence buffer.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class SeqKV:
    """The cached keys/values and token ids of one sequence."""

    def __init__(self, shape: tuple[int, int, int, int], dtype: torch.dtype, device: str) -> None:
        self.shape = shape  # (layers, 2, kv_heads, head_dim)
        self.dtype, self.device = dtype, device
        self.kv: torch.Tensor | None = None  # [layers, 2, kv_heads, capacity, head_dim]
        self.tokens: list[int] = []  # token ids of the valid positions

    @property
    def length(self) -> int:
        return len(self.tokens)

    def valid(self) -> torch.Tensor:
        """[layers, 2, kv_heads, length, head_dim] (a view)."""
        assert self.kv is not None
        return self.kv[:, :, :, : self.length]

    def append(self, new_kv: torch.Tensor, tokens: list[int]) -> None:
        """new_kv [layers, 2, kv_heads, n, head_dim] for ``tokens`` (n of them)."""
        n, old = len(tokens), self.length
        cap = 0 if self.kv is None else self.kv.shape[3]
        if old + n > cap:
            layers, two, heads, dim = self.shape
            new_cap = max(2 * cap, old + n, 16)
            grown = torch.empty(
                layers, two, heads, new_cap, dim, dtype=self.dtype, device=self.device
            )
            if old:
                grown[:, :, :, :old] = self.valid()
            self.kv = grown
        assert self.kv is not None
        self.kv[:, :, :, old : old + n] = new_kv
        self.tokens.extend(tokens)

    def crop(self, length: int) -> None:
        if not 0 <= length <= self.length:
            raise ValueError(f"crop to {length}: the cache holds {self.length} tokens")
        del self.tokens[length:]


class BatchLayer(DynamicLayer):
    """One layer's padded batch K/V; ``update`` writes the new positions in place."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, past: int) -> None:
        super().__init__()
        self.keys, self.values = keys, values  # [B, kv_heads, P + T, head_dim]
        self.dtype, self.device = keys.dtype, keys.device
        self.past = past  # P
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):  # type: ignore[override]
        t = key_states.shape[-2]  # [B, kv_heads, T, head_dim]
        self.keys[:, :, self.past : self.past + t] = key_states
        self.values[:, :, self.past : self.past + t] = value_states
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return int(self.keys.shape[-2])


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


def gather(
    seqs: list[SeqKV], n_new: list[int], dtype: torch.dtype, device: str
) -> tuple[torch.Tensor, Cache, torch.Tensor, int]:
    """Build the padded batch for one forward.

    Returns (buf [layers, 2, B, kv_heads, P+T, head_dim], the HF cache over it,
    additive attention mask [B, 1, T, P+T], P).
    """
    b, p, t = len(seqs), max(s.length for s in seqs), max(n_new)
    layers, two, heads, dim = seqs[0].shape
    buf = torch.zeros(layers, two, b, heads, p + t, dim, dtype=dtype, device=device)
    for i, s in enumerate(seqs):
        if s.length:
            buf[:, :, i, :, p - s.length : p] = s.valid()
    cache = Cache(layers=[BatchLayer(buf[layer, 0], buf[layer, 1], p) for layer in range(layers)])

    lengths = torch.tensor([s.length for s in seqs], device=device)  # [B]
    n = torch.tensor(n_new, device=device)  # [B]
    key = torch.arange(p + t, device=device)  # [P+T] batch-buffer index of each key
    valid = (key[None, :] >= p - lengths[:, None]) & (key[None, :] < p + n[:, None])  # [B, P+T]
    query = p + torch.arange(t, device=device)  # [T]
    causal = key[None, :] <= query[:, None]  # [T, P+T]
    allowed = valid[:, None, None, :] & causal[None, None, :, :]  # [B, 1, T, P+T]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)  # additive: works for sdpa and eager
    return buf, cache, mask, p


def scatter(buf: torch.Tensor, seqs: list[SeqKV], new_tokens: list[list[int]], past: int) -> None:
    """Append each row's new K/V (written by the forward) to its sequence."""
    for i, (s, toks) in enumerate(zip(seqs, new_tokens, strict=True)):
        s.append(buf[:, :, i, :, past : past + len(toks)], toks)
