"""Teacher-forced probe rows for the vLLM engine, from vLLM's own ``prompt_logprobs``.

A SeqWork with ``probe_offsets`` and ``probe_targets`` (prompt scoring,
``engines.prompt_scores``) gets one extra vLLM request per step:

    TokensPrompt(cached tokens + new_tokens + [last target]), max_tokens 1,
    prompt_logprobs = max(k, TOPK)
      -> per probe row: the target's log-prob and the k best (StepOutput.probe_logprobs),
         and the router's inputs: the argmax token and the top-8 log-probs (RouterFeatures)

The last target is appended so the row after the final new token has a prompt log-prob
too; the token that request samples is dropped, and the engine's cache bookkeeping (the
token list) is that of the normal request. Rows carry no hidden state: a router that
reads one is refused for this engine at start-up. Probes without targets (training-time
collection, which needs hidden states) stay refused.
"""

from __future__ import annotations

from typing import Any

import torch

from engines.types import SeqWork, TokenLogprob
from router_models.base import TOPK, RouterFeatures


def probe_requests(work: list[SeqWork], ctx: list[list[int]]) -> list[tuple[int, Any, Any]]:
    """(work index, TokensPrompt, SamplingParams) of each work item's probe request."""
    from vllm import SamplingParams as VSamplingParams
    from vllm.inputs import TokensPrompt

    out = []
    for i, w in enumerate(work):
        if not w.probe_offsets:
            continue
        k = max(w.probe_logprobs or 0, TOPK)
        sp = VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=k, detokenize=False)
        out.append((i, TokensPrompt(prompt_token_ids=ctx[i] + [w.probe_targets[-1]]), sp))
    return out


def probe_rows(
    work: list[SeqWork], asked: list[int], outs: list[Any]
) -> tuple[RouterFeatures, list[list[TokenLogprob]] | None]:
    """Probe rows of the work items in ``asked`` (in work order) from their requests'
    prompt log-probs: RouterFeatures (token = argmax, top-8) and the targets' log-probs."""
    ids: list[int] = []
    tops: list[list[float]] = []
    seeds: list[int] = []
    positions: list[int] = []
    lps: list[list[TokenLogprob]] = [[] for _ in work]
    for i, out in zip(asked, outs, strict=True):
        w = work[i]
        for o, target in zip(w.probe_offsets, w.probe_targets, strict=True):
            p = w.start + o + 1  # the prompt position this row predicts
            entries = out.prompt_logprobs[p]  # {token id: Logprob(logprob, rank)}
            k = max(w.probe_logprobs or 0, TOPK)  # as asked in probe_requests
            best = sorted((e.rank, t, e.logprob) for t, e in entries.items() if e.rank <= k)
            ids.append(best[0][1])
            tops.append([lp for _, _, lp in best[:TOPK]])
            seeds.append(w.seed)
            positions.append(p)
            if w.probe_logprobs is not None:
                alts = tuple((t, lp) for r, t, lp in best if r <= w.probe_logprobs)
                lps[i].append(TokenLogprob(entries[target].logprob, alts))
    feats = RouterFeatures(
        token_ids=torch.tensor(ids, dtype=torch.int64),  # [R]
        topk_logprobs=torch.tensor(tops, dtype=torch.float32).reshape(len(ids), TOPK),
        seeds=seeds,
        positions=positions,
    )
    any_lp = any(work[i].probe_logprobs is not None for i in asked)
    return feats, lps if any_lp else None
