"""Adaptive run-ahead per sequence (SchedulerConfig.adaptive_window): after a cut a
sequence drafts 1 token, after an uncut step twice as many, at most the window. It
changes how many drafts are thrown away, never which token a position gets."""

from __future__ import annotations

import pytest

from engines.async_engine import generate_batch
from engines.scheduler import SchedulerConfig
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, sched, trace


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("defer_steps", [0, 3])
def test_adaptive_window_never_changes_tokens(engines, sampling: dict, defer_steps: int) -> None:
    reqs = [req(f"r{i}", p, 24, seed=100 + i, **sampling) for i, p in enumerate(prompts(12))]
    fixed = generate_batch(sched(engines, window=4), reqs)
    alone = [
        generate_batch(sched(engines, window=4, adaptive_window=True), [r])[0] for r in reqs[:4]
    ]
    s = sched(engines, window=4, adaptive_window=True, defer_steps=defer_steps, max_batch=12)
    now = generate_batch(s, reqs)
    assert [trace(o) for o in now] == [trace(o) for o in fixed]
    assert [trace(o) for o in alone] == [trace(o) for o in fixed[:4]]  # c=1 vs c=12
    assert {src for o in now for src in o.sources} == {"slm", "llm"}
    assert_freed(engines)


def test_adaptive_window_drafts_less_after_cuts(engines) -> None:
    """Counts, not time: fewer SLM draft rows for the same committed tokens, and the
    drafts a step asks for follow the rule (1 after a cut, doubling up to the window)."""
    reqs = [req(f"r{i}", p, 30, seed=i) for i, p in enumerate(prompts(12))]
    drafted = {}
    for adaptive in (False, True):
        s = sched(engines, window=4, adaptive_window=adaptive, max_batch=12)
        for r in reqs:
            s.add_request(r)
        caps: list[int | None] = []
        while s.has_work():
            before = {rid: q.draft_cap for rid, q in s.running.items()}
            events = s.step()
            llm = {e.request_id for e in events if e.source == "llm"}
            for rid, q in s.running.items():
                if adaptive and rid in before and rid not in s.parked:
                    prev = before[rid] or 4
                    assert q.draft_cap == (1 if rid in llm else min(4, 2 * prev))
                caps.append(q.draft_cap)
        drafted[adaptive] = s.totals.drafted
        assert (1 in caps) == adaptive  # fixed windows never set a cap
    assert drafted[True] < drafted[False]
    assert_freed(engines)


def test_adaptive_window_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import GatewaySettings

    assert SchedulerConfig().adaptive_window is False  # off unless asked (see BENCHMARKS.md)
    assert GatewaySettings().adaptive_window is False
    monkeypatch.setenv("CITER_ADAPTIVE_WINDOW", "true")
    assert GatewaySettings().adaptive_window is True
