"""Deferred LLM batching (SchedulerConfig.defer_steps / defer_fill) changes when the
LLM runs, never which token a position gets, and adds a bounded number of steps."""

from __future__ import annotations

import pytest

from engines.async_engine import generate_batch
from engines.scheduler import SchedulerConfig
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, sched, trace

DEFERRED = [(0, 0.5), (2, 0.5), (3, 1.0), (8, 0.9)]  # (defer_steps, defer_fill)


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("window", [1, 3])
def test_deferral_never_changes_tokens(engines, sampling: dict, window: int) -> None:
    reqs = [req(f"r{i}", p, 24, seed=100 + i, **sampling) for i, p in enumerate(prompts(16))]
    alone = [generate_batch(sched(engines, window=window), [r])[0] for r in reqs[:4]]
    now = generate_batch(sched(engines, window=window), reqs)
    assert [trace(o) for o in now[:4]] == [trace(o) for o in alone]  # c=1 vs c=16
    for steps, fill in DEFERRED[1:]:
        later = generate_batch(
            sched(engines, window=window, defer_steps=steps, defer_fill=fill, max_batch=16), reqs
        )
        assert [trace(o) for o in later] == [trace(o) for o in now]
    assert {src for o in now for src in o.sources} == {"slm", "llm"}
    assert_freed(engines)


@pytest.mark.parametrize(("steps", "fill"), DEFERRED)
def test_a_parked_sequence_waits_at_most_defer_steps(engines, steps: int, fill: float) -> None:
    """Step counts, not wall time: every running request commits a token at least once
    every defer_steps + 1 steps, and the LLM passes grow fuller as deferral grows."""
    s = sched(engines, window=1, defer_steps=steps, defer_fill=fill, max_batch=12)
    for i, p in enumerate(prompts(12)):
        s.add_request(req(f"r{i}", p, 30, seed=i))
    last: dict[str, int] = {}
    worst = step = 0
    while s.has_work():
        step += 1
        for ev in s.step():
            if ev.token_id is not None:
                worst = max(worst, step - last.get(ev.request_id, step - 1))
                last[ev.request_id] = step
        for rid in s.running:  # admitted in this step: its wait starts now
            last.setdefault(rid, step)
        assert all(step - last[rid] <= steps for rid in s.running)  # parked <= steps
    assert worst <= steps + 1
    t = s.totals
    assert t.llm_calls > 0 and t.llm_passes <= t.llm_calls
    if steps == 0:
        assert t.parked == 0  # no deferral: the LLM runs in the step that routed it
    assert_freed(engines)


def test_deferral_fills_llm_passes(engines) -> None:
    reqs = [req(f"r{i}", p, 30, seed=i) for i, p in enumerate(prompts(12))]
    passes = []
    for steps in (0, 8):
        s = sched(engines, window=1, defer_steps=steps, defer_fill=0.9, max_batch=12)
        for r in reqs:
            s.add_request(r)
        while s.has_work():
            s.step()
        passes.append(s.totals.llm_passes)
        assert s.totals.llm_calls > 0
    assert passes[1] < passes[0]  # the same LLM jobs in fewer, fuller passes


def test_abort_while_parked_frees_it(engines) -> None:
    s = sched(engines, window=1, defer_steps=50, defer_fill=1.0, max_batch=6)
    for i, p in enumerate(prompts(6)):
        s.add_request(req(f"r{i}", p, 40, seed=i))
    while not s.parked and s.has_work():
        s.step()
    rid = next(iter(s.parked))
    seq_id = s.running[rid].seq_id
    s.abort(rid)
    events = s.step()
    assert [e.finish_reason for e in events if e.request_id == rid] == ["abort"]
    assert rid not in s.parked and rid not in s.running
    assert engines[0].cache_len(seq_id) == 0 and engines[1].cache_len(seq_id) == 0
    while s.has_work():
        s.step()
    assert_freed(engines)


@pytest.mark.parametrize(
    ("kw", "match"), [({"defer_steps": -1}, "defer_steps"), ({"defer_fill": 0.0}, "defer_fill")]
)
def test_bad_deferral_settings_are_refused(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SchedulerConfig(**kw)
