"""Baselines trained on the same collection: the query-level router (RouteLLM-style).

    train items --SLM-only greedy decode (real scheduler) + verifier--> y = 1 if the SLM fails
    SLM hidden at the last prompt token (answer row t = 0) --fit (same MLP, same loss)--> score

One decision per request: a query whose score exceeds the threshold is
answered by the LLM alone, every other one by the SLM alone. Its accuracy /
LLM-share curve is therefore composed exactly from the SLM-only and LLM-only
runs of the same items (``sweep.query_curve``); only the scores come from here.
CITER-S and CITER after round 1 are rounds of ``loop.run_rounds``.
"""

from __future__ import annotations

from typing import Any

import torch

from engines.types import SamplingParams, SeqWork
from router_models.citer import CiterMLP
from router_models.policies import AlwaysSLM
from router_models.train.collect import Collection
from router_models.train.rollout import (
    ANSWER_MAX_TOKENS,
    RolloutConfig,
    answer_text,
    routed_generate,
)
from router_models.train.train import FitConfig, fit_router, scores
from tasks.verify import is_correct


def slm_failures(
    coll: Collection, engines: tuple[Any, Any, Any], n_items: int, cfg: RolloutConfig
) -> torch.Tensor:
    """y [n] = 1 where the SLM alone answers item i (i < n_items) wrongly."""
    slm, llm, tok = engines
    n = min(n_items, coll.n_items)
    if n == 0:
        raise ValueError("empty collection: no items to label the query-level router")
    prompts = coll.prompt_ids[:n]
    budgets = [ANSWER_MAX_TOKENS] * n
    outs, _ = routed_generate(
        slm,
        llm,
        tok,
        AlwaysSLM(),
        0.5,
        prompts,
        budgets,
        window=cfg.window,
        concurrency=cfg.concurrency,
        desc="query labels (SLM-only)",
    )
    wrong = [
        not is_correct(answer_text(tok, o.token_ids), coll.answers[i], coll.verifiers[i])
        for i, o in enumerate(outs)
    ]
    return torch.tensor(wrong, dtype=torch.long)


def fit_query_router(
    coll: Collection, y: torch.Tensor, fit: FitConfig
) -> tuple[CiterMLP, list[float]]:
    """MLP on the prompt's summary (SLM hidden at answer row 0) -> P(SLM fails)."""
    first = coll.first_rows()[: len(y)]
    if bool((first < 0).any()):
        raise ValueError("collection lacks the answer-position-0 row of some item")
    # Equal class costs: one decision per answer, so the per-token cost does not apply.
    return fit_router(
        coll.hidden[first], y, None, FitConfig(**{**fit.to_json(), "cost_lambda": 0.5})
    )


def prompt_hidden(slm: Any, prompts: list[list[int]], batch_size: int = 32) -> torch.Tensor:
    """SLM final hidden at each prompt's last token; [n, hidden] (query router input)."""
    out: list[torch.Tensor] = []
    sp = SamplingParams(max_tokens=1)
    for s in range(0, len(prompts), batch_size):
        chunk = prompts[s : s + batch_size]
        work = [
            SeqWork((1 << 41) + k, 0, p, sp, seed=0, probe_offsets=(len(p) - 1,))
            for k, p in enumerate(chunk)
        ]
        try:
            out.append(slm.step(work).probes.hidden.float().cpu())
        finally:
            for w in work:
                slm.free(w.seq_id)
    return torch.cat(out) if out else torch.zeros(0, slm.info.hidden_size)


def query_scores(model: CiterMLP, slm: Any, prompts: list[list[int]]) -> list[float]:
    """P(SLM fails) per prompt."""
    return scores(model, prompt_hidden(slm, prompts)).tolist()
