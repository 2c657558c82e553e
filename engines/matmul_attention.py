"""Attention for bf16/fp16 caches on the CPU as fp32 matmuls, for short queries.

torch's CPU SDPA kernels for bf16/fp16 work one (sequence, head, query block) at a time
and spend most of a decode step's attention in that loop: on Qwen2.5-Coder 0.5B's
shapes (14 heads over 2 key/value heads x 64, 300 cached positions, 16 sequences, one
new token each, two threads) one layer took 5.8 ms against 0.65 ms here, where the
heads that share a key/value head go through one fp32 matmul with it (no repeated
keys), the softmax runs in fp32 and the result is rounded once, back to the cache's
dtype. Queries of up to ``MATMUL_ROWS`` rows per sequence (decode, catch-up, verify)
take this path; longer ones (prompts) keep SDPA, whose blocks bound the memory the
scores take. float32 models keep SDPA everywhere: the fused kernel is as fast there.
``benchmarks/kv_bytes.py`` times both.
"""

from __future__ import annotations

import torch

MATMUL_ROWS = 32  # query rows per sequence up to which bf16/fp16 attention runs as matmuls
_REDUCED = (torch.bfloat16, torch.float16)
# kwargs of transformers' attention call this path honours (the mask carries causality)
# or that inform nothing attention computes; any other set value (dropout, soft-capping,
# sinks, a sliding window) keeps SDPA
_HONOURED = {"scaling", "is_causal", "position_ids", "cache_position", "use_cache"}


def fits(query: torch.Tensor, mask: torch.Tensor | None, kwargs: dict[str, object]) -> bool:
    """Whether ``attend`` serves this call: bf16/fp16 on the CPU, at most MATMUL_ROWS
    query rows, a mask whenever there is more than one row (causality comes from it)."""
    if query.device.type != "cpu" or query.dtype not in _REDUCED:
        return False
    if query.shape[2] > MATMUL_ROWS or (mask is None and query.shape[2] > 1):
        return False
    return all(v is None or k in _HONOURED or (k == "dropout" and v == 0)
               for k, v in kwargs.items())  # fmt: skip


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float | None = None,
) -> torch.Tensor:
    """query [B, H, T, D]; key/value [B, KVH, K, D] (H a multiple of KVH); mask None, bool
    (True: attend) or additive, broadcastable to [B, H, T, K]. Returns [B, H, T, D] in
    query's dtype."""
    b, h, t, d = query.shape
    kvh, k_len = key.shape[1], key.shape[2]
    g = h // kvh  # query heads per key/value head
    scale = d**-0.5 if scale is None else scale
    q = query.float().reshape(b, kvh, g * t, d)  # a group's heads stacked as rows
    scores = torch.matmul(q, key.float().transpose(-1, -2)).mul_(scale)  # [B, KVH, G*T, K]
    if mask is not None:
        s = scores.view(b, kvh, g, t, k_len)
        m = mask[:, :, None] if mask.shape[1] == 1 else mask.unflatten(1, (kvh, g))
        if m.dtype == torch.bool:  # finfo.min, not -inf: a row with nothing left stays finite
            s.masked_fill_(~m, torch.finfo(torch.float32).min)
        else:
            s.add_(m.float())
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, value.float())  # [B, KVH, G*T, D]
    return out.view(b, h, t, d).to(query.dtype)
