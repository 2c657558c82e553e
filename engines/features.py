"""Router feature rows (``RouterFeatures``) built from an engine's tensors.

Shared by the engine backends so every engine hands routers the same rows:
one per produced token, work-major (all drafts of work item 0, then item 1,
...), each labelled with the request seed and the token's absolute position.
"""

from __future__ import annotations

import torch

from engines.sampling import sample, token_logprobs
from engines.types import SeqWork, TokenLogprob
from router_models.base import RouterFeatures, topk_logprobs


def draft_rows(
    work: list[SeqWork],
    rows: list[tuple[int, int]],
    ids: list[torch.Tensor],
    logits: list[torch.Tensor],
    hidden: list[torch.Tensor],
    topk: list[torch.Tensor] | None = None,
) -> RouterFeatures:
    """Rows of the tokens produced in one step.

    ``rows[r] = (work index, draft index)`` in forward order; ``ids``, ``logits``
    ``hidden`` and ``topk`` hold one tensor per forward ([B_j], [B_j, vocab],
    [B_j, hidden], [B_j, TOPK]) whose rows concatenate to that order; empty
    lists: that feature was not asked.
    """
    order = sorted(range(len(rows)), key=lambda r: rows[r])  # forward-major -> work-major
    idx = torch.tensor(order, device=ids[0].device)
    by_work = [rows[r] for r in order]
    return RouterFeatures(
        token_ids=torch.cat(ids)[idx],  # [R] int64
        logits=torch.cat(logits)[idx] if logits else None,  # [R, vocab] float32
        hidden=torch.cat(hidden)[idx] if hidden else None,  # [R, hidden] float32
        topk_logprobs=torch.cat(topk)[idx] if topk else None,  # [R, TOPK] float32
        seeds=[work[i].seed for i, _ in by_work],
        positions=[work[i].start + len(work[i].new_tokens) + j for i, j in by_work],
    )


def probe_rows(work: list[SeqWork], logits: torch.Tensor, hidden: torch.Tensor) -> RouterFeatures:
    """Teacher-forced rows at each work item's probe_offsets, in work order.

    logits [m, vocab] and hidden [m, hidden] are computed at input token o; the
    row describes the prediction of position start + o + 1 (token = argmax).
    """
    where = [(i, o) for i, w in enumerate(work) for o in w.probe_offsets]
    return RouterFeatures(
        token_ids=logits.argmax(-1),
        logits=logits,
        hidden=hidden,
        topk_logprobs=topk_logprobs(logits),
        seeds=[work[i].seed for i, _ in where],
        positions=[work[i].start + o + 1 for i, o in where],
    )


def probe_logprobs(work: list[SeqWork], logits: torch.Tensor) -> list[list[TokenLogprob]] | None:
    """Per work item, the log-prob of each ``probe_targets`` token under its probe row's
    raw logits (work order, as ``probe_rows``) and the ``probe_logprobs`` best
    alternatives; None when no item asked. logits [sum(probes), vocab]."""
    if all(w.probe_logprobs is None for w in work):
        return None
    ks = [w.probe_logprobs for w in work for _ in w.probe_offsets]
    targets = [t for w in work for t in (w.probe_targets or [0] * len(w.probe_offsets))]
    ids = torch.tensor(targets, dtype=torch.long, device=logits.device)  # [sum(probes)]
    rows = iter(token_logprobs(logits, ids, ks))
    return [[r for _ in w.probe_offsets if (r := next(rows)) is not None] for w in work]


def sampled_rows(
    work: list[SeqWork], logits: torch.Tensor
) -> tuple[list[list[int]], list[list[TokenLogprob]] | None]:
    """Per work item, the token sampled after each ``sample_offsets`` input (position
    start + o + 1, stream (seed, that position), exactly as a token sampled at the end)
    and, for the items whose sampling asks, its log-probs. logits [sum(offsets), vocab]."""
    where = [(i, o) for i, w in enumerate(work) for o in w.sample_offsets]
    ids = sample(logits, [work[i].sampling for i, _ in where], [work[i].seed for i, _ in where],
                 [work[i].start + o + 1 for i, o in where])  # fmt: skip  # [m]
    it = iter(ids.tolist())
    tokens = [[next(it) for _ in w.sample_offsets] for w in work]
    if all(w.sampling.logprobs is None for w in work):
        return tokens, None
    rows = iter(token_logprobs(logits, ids, [work[i].sampling.logprobs for i, _ in where]))
    lps = [[r for _ in w.sample_offsets if (r := next(rows)) is not None] for w in work]
    return tokens, lps
