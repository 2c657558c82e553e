"""The five invariants of DESIGN.md, on exact token sequences."""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from engines.async_engine import generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import Request, RequestOutput, RoutingParams, SamplingParams
from tests.engines.helpers import ConstRouter, ModRouter, Score

SAMPLED = dict(temperature=1.0, top_k=40, top_p=0.95)


def sched(engines, router=None, **cfg) -> Scheduler:
    slm, llm, tok = engines
    return Scheduler(slm, llm, router or ModRouter(), tok, SchedulerConfig(**cfg))


def req(rid: str, prompt: list[int], max_tokens: int = 16, **kw) -> Request:
    routing = RoutingParams(**kw.pop("routing", {}))
    return Request(rid, prompt, SamplingParams(max_tokens=max_tokens, **kw), routing)


def prompts(n: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(5)
    return [torch.randint(3, 100, (1 + (7 * i) % 23,), generator=g).tolist() for i in range(n)]


def assert_freed(engines) -> None:
    assert engines[0].num_caches() == 0 and engines[1].num_caches() == 0


def trace(out: RequestOutput) -> list[tuple[int, str, float]]:
    return list(zip(out.token_ids, out.sources, map(Score, out.scores), strict=True))


@lru_cache(maxsize=2)
def _hf(path: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(path).eval()


def hf_greedy(path: Path, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = _hf(path).generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, len(prompt) :].tolist()  # stops after eos (id 2) like the scheduler


def test_lazy_commit_caches_hold_only_committed_tokens(engines) -> None:
    s = sched(engines, window=4)
    for i, p in enumerate(prompts(4)):
        s.add_request(req(f"r{i}", p, max_tokens=20))
    cropped = 0
    while s.has_work():
        s.step()
        for seq in s.running.values():
            slm_cache = engines[0].cached_tokens(seq.seq_id)
            llm_cache = engines[1].cached_tokens(seq.seq_id)
            assert slm_cache == seq.tokens[: len(slm_cache)] and seq.slm_seen == len(slm_cache)
            assert llm_cache == seq.tokens[: len(llm_cache)] and seq.llm_seen == len(llm_cache)
            cropped += seq.stats.drafted_tokens > seq.stats.slm_tokens + seq.stats.llm_tokens
    assert cropped > 0  # some drafts were cut by an LLM route and cropped away
    assert_freed(engines)


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
def test_run_ahead_window_does_not_change_tokens(engines, sampling: dict) -> None:
    reqs = [req(f"r{i}", p, 24, seed=100 + i, **sampling) for i, p in enumerate(prompts(6))]
    k1 = generate_batch(sched(engines, window=1), reqs)
    for k in (2, 4):
        assert [trace(o) for o in generate_batch(sched(engines, window=k), reqs)] == [
            trace(o) for o in k1
        ]
    sources = {src for o in k1 for src in o.sources}
    assert sources == {"slm", "llm"}  # the policy really mixes both models
    assert_freed(engines)


@pytest.mark.parametrize(("which", "value"), [(0, 0.0), (1, 1.0)], ids=["slm", "llm"])
def test_degenerate_policies_equal_hf_generate(engines, model_dirs, which: int, value: float):
    reqs = [req(f"r{i}", p, max_tokens=20) for i, p in enumerate(prompts(5))]
    outs = generate_batch(sched(engines, ConstRouter(value), window=3), reqs)
    for r, o in zip(reqs, outs, strict=True):
        assert o.token_ids == hf_greedy(model_dirs[which], r.prompt_ids, 20)
        assert set(o.sources) == {"slm" if which == 0 else "llm"}
        if which == 1:  # the LLM keeps each token it reads once (verified drafts it
            # threw away are counted apart): the prompt, then every token but the last
            assert o.stats.llm_input_tokens == len(r.prompt_ids) + len(o.token_ids) - 1
            assert o.stats.llm_discarded_tokens > 0  # the demo SLM disagrees at some cut
    assert_freed(engines)


def test_sixteen_mixed_requests_batched_equal_alone(engines) -> None:
    reqs = [
        req(f"r{i}", p, max_tokens=4 + i % 9, seed=i, **(SAMPLED if i % 2 else {}))
        for i, p in enumerate(prompts(16))
    ]
    batched = generate_batch(sched(engines, window=3), reqs)
    for r, o in zip(reqs, batched, strict=True):
        (alone,) = generate_batch(sched(engines, window=3), [r])
        assert trace(o) == trace(alone) and o.text == alone.text
        assert o.finish_reason == alone.finish_reason
    assert_freed(engines)


def test_abort_frees_both_caches_within_one_step(engines) -> None:
    ps = prompts(4)
    s = sched(engines, window=2, max_batch=3)
    for i, p in enumerate(ps):
        s.add_request(req(f"r{i}", p, max_tokens=30, seed=i, **SAMPLED))
    got: dict[str, list[int]] = {f"r{i}": [] for i in range(4)}
    finish: dict[str, str] = {}
    for _ in range(3):
        for ev in s.step():
            got[ev.request_id].append(ev.token_id)
    seq = s.running["r1"]
    assert engines[0].cache_len(seq.seq_id) > 0 and engines[1].cache_len(seq.seq_id) > 0
    s.abort("r1")  # running
    s.abort("r3")  # still waiting (max_batch=3)
    events = s.step()
    for ev in events:
        if ev.finish_reason:
            finish[ev.request_id] = ev.finish_reason
    assert finish == {"r1": "abort", "r3": "abort"}
    assert [e for e in events if e.request_id in ("r1", "r3") and e.token_id is not None] == []
    assert "r1" not in s.running and "r3" not in s.running and not s.waiting
    assert engines[0].cache_len(seq.seq_id) == 0 and engines[1].cache_len(seq.seq_id) == 0
    assert engines[0].num_caches() == 2 and engines[1].num_caches() <= 2
    for ev in events:
        got[ev.request_id].append(ev.token_id)
    while s.has_work():
        for ev in s.step():
            got[ev.request_id].append(ev.token_id)
    undisturbed = generate_batch(
        sched(engines, window=2), [req(f"r{i}", ps[i], 30, seed=i, **SAMPLED) for i in (0, 2)]
    )
    assert [got["r0"], got["r2"]] == [o.token_ids for o in undisturbed]
    assert_freed(engines)


def test_max_tokens_eos_and_context_finish_reasons(engines, model_dirs) -> None:
    cands = [[p] for p in range(3, 100)]
    eos_prompt = next(p for p in cands if 2 in hf_greedy(model_dirs[0], p, 12))
    outs = generate_batch(
        sched(engines, ConstRouter(0.0), window=4),
        [req("eos", eos_prompt, 12), req("len", [5, 6], 7), req("ctx", [7] * 90, 50)],
    )
    eos, length, ctx = outs
    assert eos.token_ids[-1] == 2 and eos.finish_reason == "stop" and "<eos>" not in eos.text
    assert len(length.token_ids) == 7 and length.finish_reason == "length"
    assert len(ctx.token_ids) == 96 - 90 and ctx.finish_reason == "length"  # context full
    assert_freed(engines)


def test_stop_strings_are_never_emitted(engines) -> None:
    base = generate_batch(sched(engines), [req("a", [5, 6, 7], 40, seed=3, **SAMPLED)])[0]
    text = base.text
    assert len(text) > 12
    stop = text[8:11]  # three characters: spans token boundaries
    cut = text.index(stop)
    s = sched(engines)
    s.add_request(req("a", [5, 6, 7], 40, seed=3, stop=("zzzz", stop), **SAMPLED))
    deltas, last = [], None
    while s.has_work():
        for ev in s.step():
            deltas.append(ev.text)
            last = ev
    assert "".join(deltas) == text[:cut] and last.finish_reason == "stop"
    assert all(stop not in d for d in deltas)
    # A stop string that never completes holds text back only until the end.
    never = text[8:10] + "\x00"
    out = generate_batch(sched(engines), [req("b", [5, 6, 7], 40, seed=3, stop=never, **SAMPLED)])
    assert out[0].text == text and out[0].finish_reason == base.finish_reason
    assert_freed(engines)


def test_per_request_threshold_and_llm_cap(engines) -> None:
    p = prompts(1)[0]
    outs = generate_batch(
        sched(engines, ConstRouter(1.0), window=4),
        [
            req("capped", p, 10, routing={"max_llm_tokens": 3}),
            req("slm", p, 10, routing={"threshold": 1.0}),
            req("llm", p, 10),
        ],
    )
    capped, slm_only, llm_only = outs
    assert capped.sources == ["llm"] * 3 + ["slm"] * 7
    assert capped.stats.llm_tokens == 3 and capped.stats.slm_tokens == 7
    assert slm_only.sources == ["slm"] * 10 and llm_only.sources == ["llm"] * 10
    assert capped.token_ids[:3] == llm_only.token_ids[:3]
    assert_freed(engines)


def test_router_gets_one_batched_call_with_features(engines) -> None:
    from tests.engines.helpers import ConfidenceRouter

    router = ConfidenceRouter()
    s = sched(engines, router, window=3)
    reqs = [req(f"r{i}", p, 9) for i, p in enumerate(prompts(5))]
    outs = generate_batch(s, reqs)
    assert len(router.calls) == s.totals.steps and sum(router.calls) == s.totals.drafted
    assert s.totals.slm_s > 0 and s.totals.router_s > 0 and s.totals.sched_s > 0
    assert s.totals.committed == sum(len(o.token_ids) for o in outs)
    for o in outs:
        assert o.stats.slm_tokens + o.stats.llm_tokens == len(o.token_ids)
        assert all(0.0 <= x <= 1.0 for x in o.scores)
    assert_freed(engines)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: req("x", []), "^prompt: must have at least 1 token"),
        (lambda: req("x", [5] * 96), r"^prompt: 96 tokens; allowed 1\.\.95"),
        (lambda: req("x", [5], max_tokens=5000), r"^max_tokens=5000: allowed range \[0, 1024\]"),
        (lambda: req("x", [5], max_tokens=-1), "^max_tokens=-1"),
        (lambda: req("x", [5], temperature=-1.0), "^temperature=-1.0"),
        (lambda: req("x", [5], top_p=0.0), r"^top_p=0.0: must be in \(0, 1\]"),
        (lambda: req("x", [500]), r"^prompt: token ids must lie in \[0, 100\)"),
    ],
)
def test_bad_input_is_rejected_before_engine_work(engines, make, match: str) -> None:
    s = sched(engines)
    with pytest.raises(ValueError, match=match):
        s.add_request(make())
    assert not s.has_work()
    assert_freed(engines)


def test_bad_config_and_mismatched_router(engines) -> None:
    with pytest.raises(ValueError, match="^window=0: must be >= 1"):
        SchedulerConfig(window=0)

    class NeedsAttention(ModRouter):
        features = ("attention",)

    with pytest.raises(ValueError, match=r"needs features \['attention'\] that the SLM engine"):
        sched(engines, NeedsAttention())
    s = sched(engines)
    s.add_request(req("dup", [5]))
    with pytest.raises(ValueError, match="request_id='dup': already in use"):
        s.add_request(req("dup", [6]))
    s.abort("dup")
    s.step()
    assert not s.has_work()


def test_scheduler_modules_do_not_import_torch() -> None:
    code = "import sys, engines.scheduler, engines.async_engine; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["random", "confidence", "logprob", "entropy"])
def test_registry_policies_route_exactly_under_run_ahead(engines, name: str) -> None:
    from router_models.registry import build_router

    router, thr = build_router(name, threshold=0.5)
    reqs = [
        req(f"r{i}", p, 12, seed=i, routing={"threshold": thr}, **SAMPLED)
        for i, p in enumerate(prompts(4))
    ]
    k1 = generate_batch(sched(engines, router, window=1), reqs)
    k4 = generate_batch(sched(engines, router, window=4), reqs)
    assert [trace(o) for o in k1] == [trace(o) for o in k4]
    for o in k4:  # the source of every token follows its score and the threshold
        assert o.sources == ["llm" if x > thr else "slm" for x in o.scores]
    if name == "random":  # LLM share ~ 1 - threshold
        share = sum(o.stats.llm_tokens for o in k4) / sum(len(o.token_ids) for o in k4)
        assert 0.25 < share < 0.75
    assert_freed(engines)


def test_always_llm_decodes_without_the_slm(engines, model_dirs) -> None:
    from router_models.policies import AlwaysLLM

    reqs = [req(f"r{i}", p, max_tokens=20) for i, p in enumerate(prompts(5))]
    reqs.append(req("capped", prompts(1)[0], 10, routing={"max_llm_tokens": 3}))
    by_k = {k: generate_batch(sched(engines, AlwaysLLM(), window=k), reqs) for k in (1, 4)}
    assert [trace(o) for o in by_k[1]] == [trace(o) for o in by_k[4]]
    for r, o in zip(reqs[:-1], by_k[4][:-1], strict=True):
        assert o.token_ids == hf_greedy(model_dirs[1], r.prompt_ids, 20)
        assert o.stats.slm_input_tokens == 0 and o.stats.drafted_tokens == 0  # SLM skipped
    capped = by_k[4][-1]
    assert capped.sources == ["llm"] * 3 + ["slm"] * 7  # after the cap the SLM takes over
    assert reqs[-1].prompt_ids == reqs[0].prompt_ids  # same prompt: the same LLM start
    assert capped.token_ids[:3] == by_k[4][0].token_ids[:3]
    assert_freed(engines)


def test_threshold_minus_inf_is_llm_alone_with_any_router(engines, model_dirs) -> None:
    p = prompts(2)
    reqs = [req(f"r{i}", x, 12, routing={"threshold": float("-inf")}) for i, x in enumerate(p)]
    outs = generate_batch(sched(engines, ModRouter(), window=4), reqs)
    for r, o in zip(reqs, outs, strict=True):
        assert o.token_ids == hf_greedy(model_dirs[1], r.prompt_ids, 12)
        assert set(o.sources) == {"llm"} and o.stats.slm_input_tokens == 0
    assert_freed(engines)
