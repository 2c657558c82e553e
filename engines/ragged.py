"""Ragged forwards: only a batch's real new tokens go through the model's layers.

A batched forward over sequences that each add a different number of tokens
(an LLM pass that verifies drafted windows, a catch-up after a cut) used to be
padded to ``[rows, T]``, T being the longest: every linear layer (nearly all of
the FLOPs) computed the padding too. A ragged forward feeds the N real tokens as
one row ``[1, N]`` with their own positions; only attention, whose cost is the
cached keys, sees the padded shape: each layer scatters its N queries into
``[rows, heads, T, dim]``, runs SDPA against the rows' caches with the batch's
additive mask, and gathers the N outputs back.

A batch whose sequences do not sit in one run of cache slots (an LLM pass over
the routed subset of the running sequences) runs **direct**: the layers write
each new key/value straight into its sequence's slot of the pool and attention
runs per sequence, over views of the pool, so no cache is
copied and nothing is padded. A copy of a scattered subset read and wrote every
cached position of every row, and a batched SDPA over padded queries cost more
than the per-sequence calls (demo LLM, 24 of 64 sequences x 1-9 new tokens at
~300 cached: 44 ms against 11 ms per pass of 4 layers' attention, one thread).

The model runs under the attention implementation ``RAGGED``. Inside
``running(batch)`` (every engine forward) attention itself writes each layer's new
keys/values into the engine's cache and reads the batch's mask and plan from the
thread, so the model sees only token ids and positions: the cache never enters it
(``engines.compiled`` traces the stack with one opaque attention operator per layer).
Any other call of the model (a probe, feature extraction) is plain SDPA. Under every
path a short bf16/fp16 query on the CPU attends by fp32 matmuls instead of SDPA
(``engines.matmul_attention``: several times faster there).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from engines import matmul_attention

RAGGED = "citer_ragged"
_RUNNING = threading.local()  # .batch: the engine forward running on this thread


def attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """query [B, heads, T, dim] ([1, heads, N, dim] ragged); key/value the new tokens'
    [B, kv_heads, T, dim]. Returns [B, T, heads, dim] ([1, N, heads, dim]). Inside
    ``running(batch)`` this writes the new keys/values into the engine's cache and
    attends over it; anywhere else it is SDPA as transformers calls it."""
    batch = current()
    if batch is None:
        return _attend(module, query, key, value, attention_mask, kwargs), None
    if kwargs.get("sliding_window") or kwargs.get("softcap"):
        raise NotImplementedError("cached attention: no sliding window or soft-capping")
    scale = kwargs.get("scaling")
    scale = query.shape[-1] ** -0.5 if scale is None else float(scale)  # type: ignore[arg-type]
    layer = int(module.layer_idx)  # type: ignore[arg-type]
    if torch.compiler.is_compiling():  # one opaque call in the graph: no cache tensors in it
        return cached_attention(query, key, value, layer, scale), None
    return _cached(query, key, value, layer, scale), None


@contextmanager
def running(batch: Any) -> Iterator[None]:
    """The forward inside runs over ``batch`` (``engines.kvcache.Batch``): its cache,
    mask and plan are read here, never passed through the model, so the model's inputs
    are its token ids and positions only (what ``engines.compiled`` traces)."""
    _RUNNING.batch = batch
    try:
        yield
    finally:
        _RUNNING.batch = None


def current() -> Any:
    """The batch of the forward running on this thread (None outside ``running``)."""
    return getattr(_RUNNING, "batch", None)


@torch.library.custom_op("citer::cached_attention", mutates_args=())
def cached_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layer: int, scale: float
) -> torch.Tensor:
    """``_cached`` as one operator a compiled graph calls (it writes the running batch's
    cache, which the graph never sees)."""
    return _cached(query, key, value, layer, scale)


@cached_attention.register_fake
def _(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layer: int, scale: float):
    b, h, t, d = query.shape
    return query.new_empty(b, t, h, d)


def _cached(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, layer: int, scale: float
) -> torch.Tensor:
    """Write the new keys/values into layer ``layer`` of the running batch's cache, then
    attend: per sequence (direct), over the rows the flat tokens sit in (ragged), or
    over the padded rows. Returns [B, T, heads, dim], contiguous."""
    batch = _RUNNING.batch
    keys, values = batch.cache.layers[layer].update(key, value)
    if batch.direct is not None:
        return _direct(query, keys, values, batch.direct, scale).contiguous()
    if batch.flat is None:
        return _sdpa(query, keys, values, batch.mask, scale).transpose(1, 2).contiguous()
    rows, offs = batch.flat  # [N] row, [N] offset of each token
    n_rows, t = batch.write_at.shape
    q = query.new_zeros(n_rows, query.shape[1], t, query.shape[3])  # [R, heads, T, dim]
    q[rows, :, offs] = query[0].transpose(0, 1)  # [N, heads, dim] into their slots
    out = _sdpa(q, keys, values, batch.mask, scale)  # [R, heads, T, dim]
    return out[rows, :, offs].unsqueeze(0)  # [N, heads, dim] -> [1, N, heads, dim]


def _sdpa(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """query [B, heads, T, dim] over key/value [B, kv_heads, K, dim] -> [B, heads, T, dim]:
    fp32 matmuls for a short bf16/fp16 query on the CPU, else SDPA."""
    if matmul_attention.fits(query, mask, {}):
        return matmul_attention.attend(query, key, value, mask, scale)
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=scale, enable_gqa=query.shape[1] != key.shape[1]
    )


def _attend(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    kwargs: dict[str, object],
) -> torch.Tensor:
    """query [B, heads, T, dim] -> [B, T, heads, dim]: SDPA as transformers calls it, or
    fp32 matmuls for a short bf16/fp16 query on the CPU (``engines.matmul_attention``)."""
    if matmul_attention.fits(query, mask, kwargs):
        out = matmul_attention.attend(query, key, value, mask, kwargs.get("scaling"))  # type: ignore[arg-type]
        return out.transpose(1, 2).contiguous()
    return sdpa_attention_forward(module, query, key, value, mask, **kwargs)[0]


class Direct(NamedTuple):
    """One sequence of a direct forward: its new tokens are ``query[:, :, start:start+n]``
    and attend to ``[0, end)`` of pool slot ``slot``; ``mask`` [1, 1, n, end] (bool,
    causal within the new tokens), None when n == 1 (every cached key is visible)."""

    slot: int
    start: int
    n: int
    end: int
    mask: torch.Tensor | None


def direct_plan(slots: list[int], lens: list[int], sizes: list[int], device: str) -> list[Direct]:
    """Per sequence (in the order given): its slot, cached length and new-token count."""
    plan, start = [], 0
    for slot, past, n in zip(slots, lens, sizes, strict=True):
        mask = None
        if n > 1:
            key = torch.arange(past + n, device=device)  # [end]
            mask = (key[None, :] <= past + torch.arange(n, device=device)[:, None])[None, None]
        plan.append(Direct(slot, start, n, past + n, mask))
        start += n
    return plan


def _direct(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, plan: list[Direct], scale: float
) -> torch.Tensor:
    """query [1, heads, N, dim]; key/value the pool layer [slots, kv_heads, capacity, dim].
    Returns [1, N, heads, dim]."""
    outs = []
    for d in plan:
        q = query[:, :, d.start : d.start + d.n]  # [1, heads, n, dim]
        k = key[d.slot, :, : d.end][None]  # [1, kv_heads, end, dim], a view of the pool
        v = value[d.slot, :, : d.end][None]
        outs.append(_sdpa(q, k, v, d.mask, scale))
    return torch.cat(outs, 2).transpose(1, 2)  # [1, heads, N, dim] -> [1, N, heads, dim]


AttentionInterface.register(RAGGED, attention)
AttentionMaskInterface.register(RAGGED, sdpa_mask)


def enable(model: torch.nn.Module) -> bool:
    """Switch a model that runs SDPA to ``RAGGED``; False (unchanged) otherwise."""
    cfg = model.config
    if getattr(cfg, "_attn_implementation", None) != "sdpa":
        return False
    if not model._can_set_attn_implementation():  # type: ignore[operator]
        return False
    model.set_attn_implementation(RAGGED)  # type: ignore[operator]
    return cfg._attn_implementation == RAGGED


def disable(model: torch.nn.Module) -> None:
    """Back to plain SDPA (the load probe found the ragged path wrong for it)."""
    model.set_attn_implementation("sdpa")  # type: ignore[operator]


def flat_index(
    index: list[int], sizes: list[int], device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and offset of each real token, sequences in the order given: ([N], [N])."""
    n = torch.tensor(sizes, device=device)
    rows = torch.repeat_interleave(torch.tensor(index, device=device), n)  # [N]
    starts = torch.cumsum(n, 0) - n  # [B] first flat index of each sequence
    offs = torch.arange(int(n.sum()), device=device) - torch.repeat_interleave(starts, n)
    return rows, offs
