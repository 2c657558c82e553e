"""Batched sampling on next-token logits, one random stream per position.

Each row carries its own (temperature, top_k, top_p) and draws its uniform
from a pure hash of (request seed, absolute position): no generator state is
shared, so a position gets the same token in any batch, run-ahead window or
engine (the SLM drafting position p and the LLM writing position p use the
same draw). The token is chosen by inverse-CDF on the filtered distribution.

``token_logprobs`` reports, for the rows that ask, the log-prob of the chosen
token and the top-k alternatives under log_softmax of the raw logits (before
temperature, top-k and top-p: vLLM's default ``raw_logprobs``), so a token's
log-prob does not depend on how it was sampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engines.seeds import position_bits, unit
from engines.types import SamplingParams, TokenLogprob

__all__ = ["SamplingParams", "position_uniform", "sample", "token_logprobs"]

_SALT = 0x5AB1E5EED0C17E27  # separates the sampling stream from routers' streams


def position_uniform(seed: int, position: int) -> float:
    """Uniform in [0, 1), a pure function of (seed, position)."""
    return unit(position_bits(seed, position, _SALT))


def sample(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    seeds: Sequence[int],
    positions: Sequence[int],
) -> torch.Tensor:
    """Pick one token per row; logits [n, vocab] -> token ids [n] int64 (same device).

    Row i is the distribution of the token at absolute position positions[i]
    of a request with sampling params params[i] and seed seeds[i].
    """
    n, vocab = logits.shape
    if not len(params) == len(seeds) == len(positions) == n:
        raise ValueError(f"sample: {n} rows but {len(params)}/{len(seeds)}/{len(positions)} args")
    out = logits.argmax(dim=-1)  # [n] greedy for everyone; sampled rows overwrite
    rows = [i for i, p in enumerate(params) if p.temperature > 0.0]
    if not rows:
        return out
    dev = logits.device
    idx = torch.tensor(rows, device=dev)
    temp = torch.tensor([params[i].temperature for i in rows], device=dev)  # [m]
    # top_k past the vocabulary means off; clamped here, so no value overflows int64
    top_k = torch.tensor([min(params[i].top_k or vocab, vocab) for i in rows], device=dev)  # [m]
    top_p = torch.tensor([params[i].top_p for i in rows], dtype=torch.float64, device=dev)  # [m]
    u = torch.tensor(
        [position_uniform(seeds[i], positions[i]) for i in rows], dtype=torch.float64, device=dev
    )  # [m]

    x = logits[idx].float() / temp[:, None]  # [m, vocab]
    x_sorted, order = x.sort(dim=-1, descending=True)  # [m, vocab]
    probs = torch.softmax(x_sorted, dim=-1).double()  # [m, vocab], descending
    rank = torch.arange(vocab, device=dev)  # [vocab]
    mass_before = probs.cumsum(dim=-1) - probs  # [m, vocab]
    # The top token is always kept, however small top_p is (rank 0 is never filtered).
    keep = (rank[None, :] < top_k[:, None]) & (mass_before < top_p[:, None])  # [m, vocab]
    keep[:, 0] = True
    probs = probs * keep
    cdf = probs.cumsum(dim=-1)  # [m, vocab]
    target = u * cdf[:, -1]  # [m] in [0, kept mass)
    pick = torch.searchsorted(cdf, target[:, None], right=True)  # [m, 1]
    last_kept = keep.sum(dim=-1, keepdim=True) - 1  # [m, 1]; guards float round-up
    pick = torch.minimum(pick, last_kept)
    out[idx] = order.gather(1, pick).squeeze(1)
    return out


def token_logprobs(
    logits: torch.Tensor, ids: torch.Tensor, ks: Sequence[int | None]
) -> list[TokenLogprob | None]:
    """Per row: the log-prob of ids[i] and the ks[i] most likely (id, log-prob); None
    where ks[i] is None. logits [n, vocab] raw, ids [n]; one softmax over asking rows."""
    out: list[TokenLogprob | None] = [None] * len(ks)
    rows = [i for i, k in enumerate(ks) if k is not None]
    if not rows:
        return out
    idx = torch.tensor(rows, device=logits.device)
    lp = torch.log_softmax(logits[idx].float(), dim=-1)  # [m, vocab]
    chosen = lp.gather(1, ids[idx][:, None]).squeeze(1).tolist()  # [m]
    k_max = min(max(ks[i] or 0 for i in rows), lp.shape[1])
    top_lp, top_id = lp.topk(k_max, dim=-1)  # [m, k_max], best first
    for i, c, vals, toks in zip(rows, chosen, top_lp.tolist(), top_id.tolist(), strict=True):
        k = ks[i] or 0
        out[i] = TokenLogprob(c, tuple(zip(toks[:k], vals[:k], strict=True)))
    return out
