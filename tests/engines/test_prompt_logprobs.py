"""Prompt log-probs (echo scoring): teacher-forced through the engines' own caches, from
the model that would write each position, and they never change the completion."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from engines import prompt_scores
from engines.async_engine import generate_batch
from engines.types import RequestOutput
from tests.engines.helpers import ModRouter
from tests.engines.test_scheduler import _hf, assert_freed, prompts, req, sched

SLM_ONLY = {"routing": {"max_llm_tokens": 0}}
LLM_ONLY = {"routing": {"threshold": -math.inf}}
MODES = {"slm": SLM_ONLY, "llm": LLM_ONLY, "routed": {}}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch) -> None:
    monkeypatch.setattr(prompt_scores, "CHUNK", 4)  # prompts of up to 23 tokens: many chunks


def reference(path, prompt: list[int]) -> torch.Tensor:
    """[len(prompt) - 1, vocab]: row i is the distribution of prompt token i + 1."""
    with torch.inference_mode():
        logits = _hf(path)(torch.tensor([prompt])).logits[0].float()
    return torch.log_softmax(logits[:-1], dim=-1)


def check(model_dirs, out: RequestOutput, k: int, routed: bool = False) -> None:
    prompt, lps, src = out.prompt_ids, out.prompt_logprobs, out.prompt_sources
    assert lps is not None and src is not None and len(lps) == len(src) == len(prompt)
    assert lps[0] is None and src[0] is None
    ref = {m: reference(model_dirs[m == "llm"], prompt) for m in ("slm", "llm")}
    for p in range(1, len(prompt)):
        row = ref[src[p]][p - 1]
        assert lps[p].logprob == pytest.approx(float(row[prompt[p]]), abs=1e-4)
        want_lp, want_ids = row.topk(k)
        assert [t for t, _ in lps[p].top] == want_ids.tolist()
        assert [lp for _, lp in lps[p].top] == pytest.approx(want_lp.tolist(), abs=1e-4)
        if routed:  # the routed policy: the LLM iff the SLM's argmax % 3 == 0 (ModRouter)
            pick = int(ref["slm"][p - 1].argmax())
            assert src[p] == ("llm" if pick % 3 == 0 else "slm")


@pytest.mark.parametrize("mode", list(MODES))
def test_prompt_logprobs_come_from_the_scoring_model(engines, model_dirs, mode: str) -> None:
    reqs = [req(f"{mode[0]}{i}", p, 6, prompt_logprobs=3, **MODES[mode])
            for i, p in enumerate(prompts(6))]  # fmt: skip
    outs = generate_batch(sched(engines, ModRouter(), window=3), reqs)
    for o in outs:
        check(model_dirs, o, 3, routed=mode == "routed")
        if mode != "routed":
            assert set(o.prompt_sources[1:]) <= {mode}
    if mode == "routed":  # both models scored some positions
        assert {s for o in outs for s in o.prompt_sources[1:]} == {"slm", "llm"}
    assert_freed(engines)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("sampling", [{}, dict(temperature=1.0, top_k=40, seed=3)])
def test_scoring_the_prompt_never_changes_the_completion(engines, mode, sampling) -> None:
    plain = [req(f"r{i}", p, 12, **MODES[mode], **sampling) for i, p in enumerate(prompts(5))]
    scored = [dataclasses.replace(r, sampling=dataclasses.replace(r.sampling, prompt_logprobs=0))
              for r in plain]  # fmt: skip
    a = generate_batch(sched(engines, ModRouter(), window=4), plain)
    b = generate_batch(sched(engines, ModRouter(), window=4), scored)
    for x, y in zip(a, b, strict=True):
        assert (x.token_ids, x.sources, x.finish_reason) == (
            y.token_ids,
            y.sources,
            y.finish_reason,
        )
        assert x.prompt_logprobs is None and y.prompt_logprobs is not None
        assert all(lp.top == () for lp in y.prompt_logprobs[1:])  # k = 0: no alternatives
    assert_freed(engines)


def test_max_tokens_zero_scores_the_prompt_and_ends(engines, model_dirs) -> None:
    ps = prompts(4)
    reqs = [req(f"z{i}", p, 0, prompt_logprobs=1, **SLM_ONLY) for i, p in enumerate(ps)]
    reqs.append(req("plain", ps[0], 0))  # nothing asked at all: ends with no work
    s = sched(engines, ModRouter())
    outs = generate_batch(s, reqs)
    for o, p in zip(outs[:-1], ps, strict=True):
        assert o.token_ids == [] and o.text == "" and o.finish_reason == "length"
        assert o.stats.slm_input_tokens == len(p) - 1 and o.stats.llm_input_tokens == 0
        check(model_dirs, o, 1)
    assert outs[-1].token_ids == [] and outs[-1].prompt_logprobs is None
    assert outs[-1].stats.slm_input_tokens == 0
    assert_freed(engines)


def test_engines_that_cannot_probe_are_refused_per_scoring_model(engines) -> None:
    s = sched(engines, ModRouter())
    s.limits = dataclasses.replace(s.limits, probes=(True, False))  # e.g. a remote LLM
    s.validate(req("slm", [5, 6], 4, prompt_logprobs=1, **SLM_ONLY))  # the SLM scores it
    for kw in ({}, LLM_ONLY):
        with pytest.raises(ValueError, match="^prompt_logprobs: this server's engines"):
            s.validate(req("x", [5, 6], 4, prompt_logprobs=1, **kw))
