"""Adaptive run-ahead per sequence (SchedulerConfig.adaptive_max_batch): while at most
that many sequences run, a sequence drafts 1 token after a cut and twice as many after
an uncut step, at most the window. It changes how many drafts are thrown away, never
which token a position gets."""

from __future__ import annotations

import pytest

from engines.async_engine import generate_batch
from engines.scheduler import SchedulerConfig
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, sched, trace


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("defer_steps", [0, 3])
def test_adaptive_window_never_changes_tokens(engines, sampling: dict, defer_steps: int) -> None:
    reqs = [req(f"r{i}", p, 24, seed=100 + i, **sampling) for i, p in enumerate(prompts(16))]
    fixed = generate_batch(sched(engines, window=4, adaptive_max_batch=0), reqs)
    alone = [generate_batch(sched(engines, window=4), [r])[0] for r in reqs[:4]]  # default: 1
    s = sched(engines, window=4, adaptive_max_batch=16, defer_steps=defer_steps, max_batch=16)
    now = generate_batch(s, reqs)
    assert [trace(o) for o in now] == [trace(o) for o in fixed]
    assert [trace(o) for o in alone] == [trace(o) for o in fixed[:4]]  # c=1 vs c=16
    assert {src for o in now for src in o.sources} == {"slm", "llm"}
    assert_freed(engines)


def test_adaptive_window_drafts_less_after_cuts(engines) -> None:
    """Counts, not time: fewer SLM draft rows for the same committed tokens, and the
    drafts a step asks for follow the rule (1 after a cut, doubling up to the window)."""
    reqs = [req(f"r{i}", p, 30, seed=i) for i, p in enumerate(prompts(12))]
    drafted = {}
    for adaptive in (False, True):
        s = sched(engines, window=4, adaptive_max_batch=12 if adaptive else 0, max_batch=12)
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


def test_adaptive_window_only_while_the_batch_is_small(engines) -> None:
    """Above adaptive_max_batch running sequences every sequence drafts the window."""
    reqs = [req(f"r{i}", p, 8 + 4 * i, seed=i) for i, p in enumerate(prompts(12))]
    drafted = {}
    for gate in (0, 4):
        s = sched(engines, window=4, adaptive_max_batch=gate, max_batch=12)
        for r in reqs:
            s.add_request(r)
        rows = []
        while s.has_work():
            n = len(s.running) + len(s.waiting) + len(s._inbox)  # the step admits all it can
            s.step()
            rows.append((min(n, 12), s.last.drafted))
        drafted[gate] = rows
    # identical steps while more than 4 run (same tokens, same windows), fewer rows after
    big = [r for r in drafted[0] if r[0] > 4]
    assert drafted[4][: len(big)] == big
    assert sum(r for _, r in drafted[4]) < sum(r for _, r in drafted[0])


def test_adaptive_window_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import GatewaySettings

    # off: with one LLM pass verifying a window, a fixed window of 8 measured faster
    assert SchedulerConfig().adaptive_max_batch == 0 and SchedulerConfig().window == 8
    assert GatewaySettings().adaptive_max_batch == 0 and GatewaySettings().verify
    monkeypatch.setenv("CITER_ADAPTIVE_MAX_BATCH", "1")
    monkeypatch.setenv("CITER_VERIFY", "false")
    assert GatewaySettings().adaptive_max_batch == 1 and not GatewaySettings().verify
    with pytest.raises(ValueError, match="adaptive_max_batch=-1: must be >= 0"):
        SchedulerConfig(adaptive_max_batch=-1)


def test_llm_agreement_with_the_drafts_is_counted(engines, model_dirs) -> None:
    """RequestStats.llm_agreed_tokens: LLM tokens at routed positions equal to the SLM's
    draft there (the drafts after such a cut would have stood). A twin of the LLM as the
    SLM agrees everywhere; two different models do not."""
    from engines.hf import HFEngine, HFEngineConfig
    from engines.scheduler import Scheduler
    from tests.engines.test_scheduler import ModRouter

    slm, llm, tok = engines
    twin = HFEngine(HFEngineConfig(str(model_dirs[1])))
    reqs = [req(f"r{i}", p, 24) for i, p in enumerate(prompts(6))]
    same = generate_batch(Scheduler(twin, llm, ModRouter(), tok, SchedulerConfig()), reqs)
    assert sum(o.stats.llm_tokens for o in same) > 0
    assert all(o.stats.llm_agreed_tokens == o.stats.llm_tokens for o in same)
    other = generate_batch(sched(engines), reqs)
    agreed, written = (sum(getattr(o.stats, f) for o in other)
                       for f in ("llm_agreed_tokens", "llm_tokens"))  # fmt: skip
    assert 0 <= agreed < written
    assert twin.num_caches() == 0
    assert_freed(engines)


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("twin", [True, False], ids=["twin-slm", "own-slm"])
def test_drafts_after_an_agreeing_cut_stand(engines, model_dirs, monkeypatch, sampling,
                                            twin: bool) -> None:  # fmt: skip
    """Where the LLM writes the SLM's own draft at a cut, the drafts after it are kept
    (up to the next routed position) instead of drafted again: the same tokens, fewer
    SLM rows and steps. Off = the cut throws them away (``_keep_rest`` a no-op)."""
    from engines import llm_phase
    from engines.hf import HFEngine, HFEngineConfig
    from engines.scheduler import Scheduler
    from tests.engines.test_scheduler import ModRouter

    slm, llm, tok = engines
    draft = HFEngine(HFEngineConfig(str(model_dirs[1]))) if twin else slm
    reqs = [req(f"r{i}", p, 24, seed=100 + i, **sampling) for i, p in enumerate(prompts(8))]

    def run():
        s = Scheduler(
            draft,
            llm,
            ModRouter(),
            tok,
            SchedulerConfig(window=4, max_batch=8, adaptive_max_batch=0),
        )
        return generate_batch(s, reqs), s.totals

    kept, on = run()
    monkeypatch.setattr(llm_phase, "_keep_rest", lambda *a: None)
    thrown, off = run()
    assert [trace(o) for o in kept] == [trace(o) for o in thrown]
    assert on.drafted <= off.drafted and on.steps <= off.steps
    if twin:  # the LLM agrees at every cut: drafts after the cut are kept, not redrafted
        assert sum(o.stats.llm_agreed_tokens for o in kept) == sum(
            o.stats.llm_tokens for o in kept) > 0  # fmt: skip
        assert on.drafted < off.drafted
    assert draft.num_caches() == 0
    assert_freed(engines)
