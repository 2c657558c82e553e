"""Fail open: positions a fallible LLM fails get the SLM's token (engines/llm_phase.py).

A fallible wrapper around the local HF LLM fails chosen calls without running
them, as the remote engine does when the cloud is down or slow; the scheduler's
invariants must hold anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from engines.async_engine import generate_batch
from engines.types import RoutingParams, SeqWork, StepOutput
from tests.engines.helpers import ConstRouter, ModRouter
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, sched, trace

ALL_LLM = {"threshold": float("-inf")}  # the all-LLM run: no SLM draft to fall back on


class FlakyLLM:
    """The HF LLM engine made fallible: ``fails(work, call_no)`` picks the work to fail."""

    def __init__(self, inner, fails: Callable[[SeqWork, int], bool]) -> None:
        self.inner, self.fails = inner, fails
        self.info = replace(inner.info, fallible=True)
        self.calls = 0
        self.failed = 0

    def step(self, work: list[SeqWork], features=None) -> StepOutput:
        verdict = [self.fails(w, self.calls + i) for i, w in enumerate(work)]
        self.calls += len(work)
        self.failed += sum(verdict)
        run = [w for w, f in zip(work, verdict, strict=True) if not f]
        out = self.inner.step(run) if run else StepOutput(tokens=[])
        it = iter(out.tokens)
        lps = iter(out.logprobs or [])
        tokens, logprobs = [], []
        for f in verdict:
            tokens.append([] if f else next(it))
            logprobs.append([] if f or out.logprobs is None else next(lps))
        return StepOutput(
            tokens=tokens,
            logprobs=logprobs if out.logprobs is not None else None,
            failed=["test" if f else None for f in verdict] if any(verdict) else None,
        )

    def __getattr__(self, name: str):  # cache_len, crop, free, num_caches, cached_tokens
        return getattr(self.inner, name)


def flaky(engines, fails) -> tuple:
    slm, llm, tok = engines
    return slm, FlakyLLM(llm, fails), tok


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("policy", ["routed", "all-llm"])
def test_an_llm_that_always_fails_gives_exactly_the_slm_answer(engines, policy, sampling):
    routing = ALL_LLM if policy == "all-llm" else {}
    reqs = [req(f"r{i}", p, 20, seed=i, routing=routing, **sampling)
            for i, p in enumerate(prompts(5))]  # fmt: skip
    dead = flaky(engines, lambda w, n: True)
    outs = generate_batch(sched(dead, ModRouter(), window=3), reqs)
    slm_only = [replace(r, routing=RoutingParams()) for r in reqs]
    alone = generate_batch(sched(engines, ConstRouter(0.0), window=3), slm_only)
    assert [o.token_ids for o in outs] == [o.token_ids for o in alone]
    assert all(set(o.sources) == {"slm"} for o in outs)
    fell = sum(o.stats.llm_fallback_tokens for o in outs)
    assert fell == dead[1].failed > 0  # every failed LLM position was counted once
    if policy == "all-llm":  # every position was the LLM's
        assert [o.stats.llm_fallback_tokens for o in outs] == [len(o.token_ids) for o in outs]
    assert all(o.stats.llm_input_tokens == 0 for o in outs)  # the LLM saw nothing
    assert_freed(engines)


@pytest.mark.parametrize("policy", ["routed", "all-llm"])
def test_each_position_is_the_llms_or_the_slms_own_token_when_calls_fail(engines, policy):
    """Every third LLM call fails. Positions the LLM wrote match an all-LLM run's token
    there only if the prefix matches; so compare with a step-by-step replay: each token
    equals what its source model samples after exactly that prefix (seeded streams)."""
    routing = ALL_LLM if policy == "all-llm" else {}
    reqs = [req(f"r{i}", p, 24, seed=7 + i, routing=routing, **SAMPLED)
            for i, p in enumerate(prompts(6))]  # fmt: skip
    s = sched(flaky(engines, lambda w, n: n % 3 == 1), ModRouter(), window=4)
    for r in reqs:
        s.add_request(r)
    got = {r.request_id: [] for r in reqs}
    while s.has_work():
        for ev in s.step():
            if ev.token_id is not None:
                got[ev.request_id].append(ev)
        for seq in s.running.values():  # lazy commit holds with failures too
            for eng, seen in ((engines[0], seq.slm_seen), (engines[1], seq.llm_seen)):
                cached = eng.cached_tokens(seq.seq_id)
                assert cached == seq.tokens[: len(cached)] and len(cached) == seen
    assert_freed(engines)
    fallbacks = 0
    for r in reqs:
        evs = got[r.request_id]
        fallbacks += sum(e.fallback for e in evs)
        assert all(e.source == "slm" for e in evs if e.fallback)
        prefix = list(r.prompt_ids)
        for e in evs:  # replay the position alone with its source model
            model = engines[1] if e.source == "llm" else engines[0]
            (one,) = model.step([SeqWork(-9, 0, prefix, r.sampling, r.sampling.seed, 1)]).tokens
            model.free(-9)
            assert one == [e.token_id]
            prefix.append(e.token_id)
    assert fallbacks > 0 and any(e.source == "llm" for evs in got.values() for e in evs)


def test_fallback_tokens_are_reported_per_token_and_per_request(engines) -> None:
    reqs = [req("a", prompts(1)[0], 16, routing=ALL_LLM, logprobs=2)]
    s = sched(flaky(engines, lambda w, n: n % 2 == 0), ModRouter(), window=2)
    (out,) = generate_batch(s, reqs)
    assert 0 < out.stats.llm_fallback_tokens < len(out.token_ids)
    assert out.stats.slm_tokens == out.stats.llm_fallback_tokens  # all-LLM: only fallbacks
    assert len(out.logprobs) == len(out.token_ids)  # fallback tokens carry the SLM's
    assert s.totals.llm_fallbacks == out.stats.llm_fallback_tokens
    assert trace(out) != trace(generate_batch(sched(engines, ModRouter(), window=2), reqs)[0])
    assert_freed(engines)


def test_a_fallible_slm_is_refused(engines) -> None:
    slm, llm, tok = engines
    with pytest.raises(ValueError, match="only the LLM may be remote"):
        sched((FlakyLLM(slm, lambda w, n: False), llm, tok))
