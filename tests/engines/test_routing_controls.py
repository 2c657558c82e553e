"""Per-request LLM ceilings (exact under run-ahead) and the scheduler's public counters."""

from __future__ import annotations

import pytest

from engines.async_engine import generate_batch
from engines.types import RequestOutput, RoutingParams
from router_models.policies import AlwaysLLM
from tests.engines.helpers import ConstRouter, ModRouter, Score
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, sched


def trace(out: RequestOutput) -> list[tuple[int, str, float | None]]:
    """(token, source, score) per token; no score (NaN) as None, so traces compare."""
    scores = [None if x != x else Score(x) for x in out.scores]
    return list(zip(out.token_ids, out.sources, scores, strict=True))


def share_allows(out: RequestOutput, i: int, share: float) -> bool:
    """The documented rule: position i may go to the LLM iff
    (LLM tokens before i + 1) / (i + 1) <= share."""
    return (out.sources[:i].count("llm") + 1) / (i + 1) <= share


@pytest.mark.parametrize(
    ("router", "routing"),
    [
        (ConstRouter(1.0), {}),  # the router wants the LLM everywhere, through the SLM pass
        (AlwaysLLM(), {}),  # constant score: the LLM runs ahead alone while the ceiling lets it
        (ModRouter(), {"threshold": float("-inf")}),  # threshold -inf: LLM alone too
        (ModRouter(), {}),  # mixed
    ],
    ids=["const-llm", "always-llm", "minus-inf", "mixed"],
)
@pytest.mark.parametrize("share", [0.25, 0.5, 0.7])
def test_llm_share_ceiling_is_exact_under_run_ahead(engines, router, routing, share) -> None:
    reqs = [
        req(f"r{i}", p, 20, seed=i, routing={**routing, "max_llm_share": share}, **SAMPLED)
        for i, p in enumerate(prompts(5))
    ]
    k1 = generate_batch(sched(engines, router, window=1), reqs)
    k4 = generate_batch(sched(engines, router, window=4), reqs)
    assert [trace(o) for o in k1] == [trace(o) for o in k4]  # same tokens, sources, scores
    wants_llm_everywhere = router.name == "llm" or routing
    for o in k4:
        for i, (src, score) in enumerate(zip(o.sources, o.scores, strict=True)):
            routed = wants_llm_everywhere or score > 0.5
            assert (src == "llm") == (routed and share_allows(o, i, share)), (i, o.sources)
            assert o.sources[: i + 1].count("llm") / (i + 1) <= share  # every prefix
    assert any("llm" in o.sources for o in k4)
    if wants_llm_everywhere:  # then the ceiling, not the router, sets the share
        o = k4[0]
        assert o.sources.count("llm") == int(share * len(o.token_ids) + 1e-9)
    assert_freed(engines)


def test_share_ceiling_pattern_with_an_always_llm_router(engines) -> None:
    (o,) = generate_batch(
        sched(engines, ConstRouter(1.0), window=4),
        [req("q", [5, 6, 7], 8, routing={"max_llm_share": 0.25})],
    )
    assert len(o.token_ids) == 8  # this prompt runs to max_tokens
    assert o.sources == ["slm"] * 3 + ["llm"] + ["slm"] * 3 + ["llm"]  # 1/4 and 2/8
    assert o.stats.llm_tokens == 2 and o.stats.slm_tokens == 6


def test_share_and_token_ceilings_combine(engines) -> None:
    p = prompts(1)[0]
    both = {"max_llm_share": 0.5, "max_llm_tokens": 2}
    (o,) = generate_batch(sched(engines, AlwaysLLM(), window=4), [req("b", p, 12, routing=both)])
    assert o.sources[:4] == ["slm", "llm", "slm", "llm"] and set(o.sources[4:]) == {"slm"}
    (none,) = generate_batch(
        sched(engines, AlwaysLLM(), window=4), [req("z", p, 6, routing={"max_llm_share": 0.0})]
    )
    assert none.sources == ["slm"] * 6
    (full,) = generate_batch(
        sched(engines, AlwaysLLM(), window=4), [req("f", p, 6, routing={"max_llm_share": 1.0})]
    )
    assert full.sources == ["llm"] * 6 and full.stats.slm_input_tokens == 0  # SLM never ran
    assert_freed(engines)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_max_llm_share_is_validated(bad: float) -> None:
    with pytest.raises(ValueError, match=r"^max_llm_share=.*: must be in \[0, 1\] or None"):
        RoutingParams(max_llm_share=bad)


def test_num_waiting_counts_inbox_and_waiting(engines) -> None:
    s = sched(engines, window=2, max_batch=2)
    for i, p in enumerate(prompts(5)):
        s.add_request(req(f"r{i}", p, 6))
    assert s.num_waiting() == 5 and not s.running  # all still in the inbox
    s.step()
    assert s.num_waiting() == 3 and len(s.running) == 2
    s.abort("r4")
    assert s.num_waiting() == 3  # an abort is not a waiting request
    s.step()
    assert s.num_waiting() == len(s.waiting) <= 2
    while s.has_work():
        s.step()
    assert s.num_waiting() == 0
    assert_freed(engines)
