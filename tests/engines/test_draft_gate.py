"""Speculative drafting's limit while serving: it follows the share of drafts the LLM
keeps (engines.draft_gate), counted in the scheduler's LLM passes, and never changes a
token."""

from __future__ import annotations

import pytest

from engines.async_engine import generate_batch
from engines.draft_gate import HALF_LIFE, PRIOR_DRAFTS, SHUT_HALF_LIFE, DraftGate
from engines.scheduler import Scheduler, SchedulerConfig
from engines.spec_probe import ProbeRow, limit_for
from tests.engines.helpers import ModRouter
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req

# Window 4; drafts + verify cost 2, decode 0.7 / 0.6 / 0.5: drafting pays at 1, 2, 4
# sequences from about 72%, 80%, 88% of drafts kept (gain = decode x E(a) / 2).
ROWS = tuple(ProbeRow(b, 1.0, 1.0, d, 0.0) for b, d in ((1, 0.7), (2, 0.6), (4, 0.5)))


def _gate(fixed: int = 2) -> DraftGate:
    return DraftGate(fixed, ROWS, window=4)


def test_the_limit_follows_the_share_of_drafts_kept() -> None:
    gate = _gate()
    assert gate.acceptance == pytest.approx(0.85) and gate.limit() == 2 == limit_for(ROWS, 4, 0.85)
    for _ in range(40):
        gate.observe(96, 100)
    assert gate.acceptance > 0.95 and gate.limit() == 4  # the last size the probe timed
    for _ in range(40):
        gate.observe(75, 100)
    assert 0.72 < gate.acceptance < 0.8 and gate.limit() == 1
    for _ in range(40):
        gate.observe(50, 100)
    assert gate.acceptance < 0.6 and gate.limit() == 0
    assert not gate.drafts(1, True) and gate.drafts(0, True)


def test_the_assumption_weighs_as_prior_drafts_and_counts_fade() -> None:
    gate = _gate()
    gate.observe(0, int(PRIOR_DRAFTS))  # as many refused as the assumption weighs
    assert gate.acceptance == pytest.approx(0.85 / 2)
    gate = _gate()
    gate.observe(int(HALF_LIFE), int(HALF_LIFE))
    gate.observe(0, int(HALF_LIFE))  # the first batch now weighs half
    want = (PRIOR_DRAFTS * 0.85 + HALF_LIFE / 2) / (PRIOR_DRAFTS + HALF_LIFE * 1.5)
    assert gate.acceptance == pytest.approx(want)
    gate.observe(0, 0)
    assert gate.acceptance == pytest.approx(want)


def test_drafting_shut_by_the_measured_share_is_tried_again() -> None:
    """Shut, nothing is checked: each shut step fades the counts, so the share drifts back
    to the assumption and drafting reopens; steps that would not draft anyway, or with no
    speculative sequence, leave the counts alone."""
    gate = _gate()
    gate.observe(300, 1000)
    assert gate.limit() == 0
    checked = gate.checked
    assert not gate.drafts(3, True)  # above the assumed limit (2): not shut by the share
    assert not gate.drafts(1, False)  # no speculative sequence ran
    assert gate.checked == checked and gate.shut_steps == 0
    steps = 0
    while not gate.drafts(1, True):
        steps += 1
        assert steps < 16 * SHUT_HALF_LIFE
    # 1,000 drafts checked fade to ~21 (log2 ~5.6 half-lives) before the share recovers
    assert steps == gate.shut_steps and 5 * SHUT_HALF_LIFE < steps < 6 * SHUT_HALF_LIFE
    assert 0.715 < gate.acceptance < 0.75  # reopened just past the 1-sequence break-even


def test_a_configured_limit_is_kept_as_set() -> None:
    gate = DraftGate(5)
    gate.observe(0, 10_000)
    assert gate.limit() == 5 and gate.drafts(5, True) and not gate.drafts(6, True)
    assert gate.describe()["measured"] < 0.01


def _run(slm, engines, reqs: list, costs: tuple = ()) -> tuple[list, Scheduler]:
    _, llm, tok = engines
    cfg = SchedulerConfig(window=4, max_batch=16, speculative_max_batch=2,
                          speculative_costs=costs)  # fmt: skip
    sched = Scheduler(slm, llm, ModRouter(), tok, cfg)
    return generate_batch(sched, reqs), sched


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
def test_scheduler_stops_drafting_where_the_llm_refuses_drafts(
    engines, model_dirs, sampling: dict
) -> None:
    """Two speculative requests under the probe's rows: the demo test pair's own SLM,
    which the LLM often overrules, stops drafting once its share is counted; a twin SLM
    (the LLM's weights: every draft kept) drafts as under the fixed limit. The tokens
    are the same in every run."""
    from engines.hf import HFEngine, HFEngineConfig

    slm, _, _ = engines
    twin = HFEngine(HFEngineConfig(str(model_dirs[1])))
    reqs = [req(f"s{i}", p, 40, seed=i, **sampling, routing={"speculative": True})
            for i, p in enumerate(prompts(2))]  # fmt: skip
    fixed, fixed_s = _run(slm, engines, reqs)
    gated, gated_s = _run(slm, engines, reqs, ROWS)
    twin_out, twin_s = _run(twin, engines, reqs, ROWS)
    want = [o.token_ids for o in fixed]
    assert [o.token_ids for o in gated] == want == [o.token_ids for o in twin_out]
    drafted = [sum(o.stats.drafted_tokens for o in outs) for outs in (fixed, gated, twin_out)]
    own = fixed_s.totals
    assert 0 < own.spec_kept < own.spec_checked  # the own SLM is overruled at times
    assert own.spec_kept / own.spec_checked < 0.7  # below where the rows pay at 1 and 2
    # below the 80% two sequences need (one alone may still pay, from ~72%)
    assert gated_s.draft_gate.acceptance < 0.8 and gated_s.draft_gate.limit() < 2
    assert 0 < drafted[1] < drafted[0]
    assert twin_s.totals.spec_kept == twin_s.totals.spec_checked > 0
    assert twin_s.draft_gate.acceptance > 0.85 and twin_s.draft_gate.limit() >= 2
    assert drafted[2] >= sum(len(w) for w in want) - 2  # drafted at every position
    assert fixed_s.draft_gate.limit() == 2  # no rows: the configured number
    assert twin.num_caches() == 0
    assert_freed(engines)
