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
runs per sequence, over views of the pool (``citer_direct``), so no cache is
copied and nothing is padded. A copy of a scattered subset read and wrote every
cached position of every row, and a batched SDPA over padded queries cost more
than the per-sequence calls (demo LLM, 24 of 64 sequences x 1-9 new tokens at
~300 cached: 44 ms against 11 ms per pass of 4 layers' attention, one thread).

The model runs under the attention implementation ``RAGGED``: SDPA itself
unless the forward passes ``citer_rows`` (row and offset of each token) or
``citer_direct``, so any other call of the model (a probe, feature extraction)
is plain SDPA. Under every path a short bf16/fp16 query on the CPU attends by fp32
matmuls instead of SDPA (``engines.matmul_attention``: several times faster there).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from engines import matmul_attention

RAGGED = "citer_ragged"


def attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """query [1, heads, N, dim] (ragged) or [B, heads, T, dim]; key/value
    [rows, kv_heads, K, dim]. Returns [1, N, heads, dim] or [B, T, heads, dim]."""
    plan = kwargs.pop("citer_direct", None)
    if plan is not None:
        return _direct(module, query, key, value, plan, kwargs), None  # type: ignore[arg-type]
    at = kwargs.pop("citer_rows", None)
    if at is None:
        return _attend(module, query, key, value, attention_mask, kwargs), None
    rows, offs, n_rows, t = at  # type: ignore[misc]  # ([N] row, [N] offset, rows, T)
    q = query.new_zeros(n_rows, query.shape[1], t, query.shape[3])  # [R, heads, T, dim]
    q[rows, :, offs] = query[0].transpose(0, 1)  # [N, heads, dim] into their slots
    out = _attend(module, q, key, value, attention_mask, kwargs)
    return out[rows, offs].unsqueeze(0), None  # out [R, T, heads, dim] -> [1, N, heads, dim]


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
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    plan: list[Direct],
    kwargs: dict[str, object],
) -> torch.Tensor:
    """query [1, heads, N, dim]; key/value the pool layer [slots, kv_heads, capacity, dim].
    Returns [1, N, heads, dim]."""
    if kwargs.get("sliding_window") or kwargs.get("softcap"):
        raise NotImplementedError("direct attention: no sliding window or soft-capping")
    scale = kwargs.get("scaling")
    gqa = query.shape[1] != key.shape[1]
    outs = []
    for d in plan:
        q = query[:, :, d.start : d.start + d.n]  # [1, heads, n, dim]
        k = key[d.slot, :, : d.end][None]  # [1, kv_heads, end, dim], a view of the pool
        v = value[d.slot, :, : d.end][None]
        if matmul_attention.fits(q, d.mask, {}):
            outs.append(matmul_attention.attend(q, k, v, d.mask, scale))  # type: ignore[arg-type]
        else:
            outs.append(F.scaled_dot_product_attention(
                q, k, v, attn_mask=d.mask, scale=scale, enable_gqa=gqa  # type: ignore[arg-type]
            ))  # fmt: skip
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
