"""Rows at prompt positions for the vLLM engine: teacher-forced probes (from vLLM's own
``prompt_logprobs``) and verify rows (tokens sampled after a SeqWork's ``sample_offsets``).

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

vLLM samples only after a prompt, so a verify row is one more request in the step's
first ``generate`` call: TokensPrompt(context up to the position), max_tokens 1, the
sampling params the engine gives that position (greedy: argmax; sampled: stream (seed,
position)), i.e. the token a step that ended there would draw. Its cached blocks come
from the prefix cache; the tokens after the last full block are computed again.
"""

from __future__ import annotations

from collections.abc import Callable
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


def verify_requests(
    work: list[SeqWork], ctx: list[list[int]], params_at: Callable[[SeqWork, int], Any]
) -> list[Any]:
    """(TokensPrompt, SamplingParams) per sample offset, work-major: position p =
    start + o + 1 is drawn after ``ctx[i][:p]`` with ``params_at(work item, p)``."""
    from vllm.inputs import TokensPrompt

    return [
        (TokensPrompt(prompt_token_ids=ctx[i][: w.start + o + 1]), params_at(w, w.start + o + 1))
        for i, w in enumerate(work)
        for o in w.sample_offsets
    ]


def verify_rows(
    work: list[SeqWork], outs: list[Any]
) -> tuple[list[list[int]], list[list[TokenLogprob]] | None]:
    """StepOutput.sampled and .sampled_logprobs from the verify requests' outputs."""
    it = iter(outs)
    tokens: list[list[int]] = [[] for _ in work]
    lps: list[list[TokenLogprob]] = [[] for _ in work]
    for i, w in enumerate(work):
        for _ in w.sample_offsets:
            comp = next(it).outputs[0]
            t = comp.token_ids[0]
            tokens[i].append(t)
            if w.sampling.logprobs is not None:
                lp, top = position_logprobs(comp.logprobs, 0, t, w.sampling.logprobs)
                lps[i].append(TokenLogprob(lp, tuple(top)))
    return tokens, lps if any(w.sampling.logprobs is not None for w in work) else None


def position_logprobs(
    lps: Any, j: int, token: int, k: int
) -> tuple[float, list[tuple[int, float]]]:
    """(log-prob of ``token``, its k most likely alternatives best first) at output j."""
    entries = lps[j]  # {token id: Logprob(logprob, rank)}: the top k plus the produced one
    top = sorted((e.rank, t, e.logprob) for t, e in entries.items() if e.rank <= k)
    return entries[token].logprob, [(t, lp) for _, t, lp in top]
