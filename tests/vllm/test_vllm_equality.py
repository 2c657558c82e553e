"""The vLLM engine decodes the demo pair token for token like the HF engine.

Greedy decoding through the real scheduler (run-ahead window 4, 8 requests batched):
always-SLM, always-LLM, the training-free log-prob router and a logprobs-only CITER
card give the same tokens and the same source per token on both engines.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

from engines.async_engine import generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import Request, RequestOutput, RoutingParams, SamplingParams
from router_models.base import FEATURE_HIDDEN, FEATURE_TOPK, topk_logprobs
from router_models.card import RouterCardError, save_card
from router_models.citer import CiterConfig, CiterMLP
from router_models.registry import build_router
from router_models.vocab import tokenizer_hash

MAX_TOKENS = 64


def assert_freed(pair) -> None:
    assert pair.slm.num_caches() == 0 and pair.llm.num_caches() == 0
    for e in (pair.slm, pair.llm):
        if hasattr(e, "num_requests"):
            assert e.num_requests() == 0  # and nothing is left inside vLLM


def decode(pair, router, thr: float, prompts, window: int = 4, sp=None) -> list[RequestOutput]:
    cfg = SchedulerConfig(window=window, max_batch=8, seed=0)
    sched = Scheduler(pair.slm, pair.llm, router, pair.tokenizer, cfg)
    sp = sp or SamplingParams(max_tokens=MAX_TOKENS)
    reqs = [
        Request(f"r{i}", p, replace(sp, seed=i), RoutingParams(thr)) for i, p in enumerate(prompts)
    ]
    outs = generate_batch(sched, reqs)
    assert_freed(pair)
    return outs


def trace(outs: list[RequestOutput]) -> list[tuple[list[int], list[str]]]:
    return [(o.token_ids, o.sources) for o in outs]


def llm_share(outs: list[RequestOutput]) -> float:
    return sum(o.sources.count("llm") for o in outs) / sum(len(o.sources) for o in outs)


def trained_mlp(features: tuple[str, ...], hidden: int) -> CiterMLP:
    """A router MLP trained for a moment to call a position critical when the SLM's top
    token has probability < 0.6 (hidden-state inputs, if any, are noise)."""
    g = torch.Generator().manual_seed(0)
    top = topk_logprobs(4.0 * torch.randn(2048, 512, generator=g))  # [n, TOPK]
    cols = {FEATURE_TOPK: top, FEATURE_HIDDEN: torch.randn(len(top), hidden, generator=g)}
    x = torch.cat([cols[f] for f in features], dim=-1)  # [n, in_dim]
    y = (top[:, 0].exp() < 0.6).float()  # [n]
    torch.manual_seed(0)
    mlp = CiterMLP(CiterConfig(in_dim=x.shape[1], width=16, dropout=0.0))
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(mlp(x), y).backward()
        opt.step()
    return mlp.eval()


def card(path: Path, slm: str, features: tuple[str, ...], hidden: int) -> Path:
    """A CITER card for the demo pair reading ``features``."""
    save_card(path, trained_mlp(features, hidden), slm=slm, llm="demo-llm", hidden_size=hidden,
              vocab_size=AutoConfig.from_pretrained(slm).vocab_size,
              tokenizer_hash=tokenizer_hash(slm), features=features)  # fmt: skip
    return path


def split_threshold(scores: list[float], q: float = 0.7) -> float:
    """A threshold near quantile q of ``scores`` in a gap wider than float noise, so the
    engines' ~1e-6 log-prob differences cannot move a position across it."""
    s = sorted(set(scores))
    i = min(int(q * len(s)), len(s) - 2)
    while s[i + 1] - s[i] < 1e-4:
        i += 1
    return (s[i] + s[i + 1]) / 2


@pytest.mark.parametrize("policy", ["slm", "llm"])
def test_single_model_policies_equal_hf(hf, vllm, prompts, policy: str) -> None:
    router, thr = build_router(policy)
    want = decode(hf, router, thr, prompts)
    got = decode(vllm, router, thr, prompts)
    assert trace(got) == trace(want)
    assert {s for o in got for s in o.sources} == {policy}
    assert sum(len(o.token_ids) for o in got) > 8 * 20  # real answers, not early eos


def test_logprob_router_equals_hf(hf, vllm, prompts) -> None:
    router, thr = build_router("logprob", threshold=0.3, available_features=vllm.slm.info.features)
    want = decode(hf, router, thr, prompts)
    got = decode(vllm, router, thr, prompts)
    assert trace(got) == trace(want)
    assert 0.02 < llm_share(got) < 0.9  # both models wrote tokens
    for a, b in zip(got, want, strict=True):  # the same scores, up to float noise
        assert a.scores == pytest.approx(b.scores, abs=1e-4)


def test_logprobs_only_citer_card_equals_hf(hf, vllm, prompts, demo, tmp_path: Path) -> None:
    path = card(tmp_path / "card", demo[0], (FEATURE_TOPK,), vllm.slm.info.hidden_size)
    kw = dict(card=str(path), hidden_size=vllm.slm.info.hidden_size,
              tokenizer_hash=tokenizer_hash(demo[0]))  # fmt: skip
    router, _ = build_router("citer", available_features=vllm.slm.info.features, **kw)
    probe = decode(hf, router, 2.0, prompts[:4])  # scores never pass 2: all SLM
    thr = split_threshold([x for o in probe for x in o.scores])
    want = decode(hf, router, thr, prompts)
    got = decode(vllm, router, thr, prompts)
    assert trace(got) == trace(want)
    assert 0.02 < llm_share(got) < 0.98


def test_card_needing_hidden_states_is_refused_at_start_up(vllm, demo, tmp_path: Path) -> None:
    hidden = vllm.slm.info.hidden_size
    path = card(tmp_path / "card", demo[0], (FEATURE_HIDDEN, FEATURE_TOPK), hidden)
    kw = dict(card=str(path), hidden_size=hidden, tokenizer_hash=tokenizer_hash(demo[0]))
    with pytest.raises(RouterCardError, match=r"needs features \['hidden:final'\].*engine"):
        build_router("citer", available_features=vllm.slm.info.features, **kw)
    confidence, _ = build_router("confidence")  # full logits: vLLM returns log-probs only
    with pytest.raises(ValueError, match=r"needs features \['logits'\]"):
        Scheduler(vllm.slm, vllm.llm, confidence, vllm.tokenizer)


def test_seeded_sampling_is_exact_under_run_ahead(vllm, prompts) -> None:
    sp = SamplingParams(max_tokens=40, temperature=0.9, top_p=0.95)
    router, thr = build_router("logprob", threshold=0.3)
    k1 = decode(vllm, router, thr, prompts[:4], window=1, sp=sp)
    k4 = decode(vllm, router, thr, prompts[:4], window=4, sp=sp)
    assert trace(k4) == trace(k1)
    greedy = decode(vllm, router, thr, prompts[:4], sp=replace(sp, temperature=0.0))
    assert trace(k4) != trace(greedy)  # it did sample


@pytest.mark.parametrize("k", [0, 5])
def test_logprobs_match_hf(hf, vllm, prompts, k: int) -> None:
    sp = SamplingParams(max_tokens=24, logprobs=k)
    router, thr = build_router("logprob", threshold=0.3)
    want = decode(hf, router, thr, prompts[:4], sp=sp)
    got = decode(vllm, router, thr, prompts[:4], sp=sp)
    assert trace(got) == trace(want)
    for a, b in zip(got, want, strict=True):
        assert len(a.logprobs) == len(a.token_ids)
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        for ta, tb in zip(a.top_logprobs, b.top_logprobs, strict=True):
            assert len(ta) == k
            assert [lp for _, lp in ta] == pytest.approx([lp for _, lp in tb], abs=1e-4)
            assert [t for t, _ in ta[:1]] == [t for t, _ in tb[:1]]  # the argmax leads both


@pytest.mark.parametrize("mode", ["slm", "llm", "routed"])
def test_prompt_logprobs_match_hf(hf, vllm, prompts, mode: str, monkeypatch) -> None:
    """echo scoring on the vllm engine (its prompt_logprobs) equals the HF engine's probe
    rows: the same scoring model per position, the same log-probs and alternatives."""
    from engines import prompt_scores

    monkeypatch.setattr(prompt_scores, "CHUNK", 16)  # several chunks per prompt
    router, thr = build_router("logprob", threshold=0.3, available_features=vllm.slm.info.features)
    routing = {"slm": RoutingParams(thr, max_llm_tokens=0),
               "llm": RoutingParams(float("-inf")), "routed": RoutingParams(thr)}[mode]  # fmt: skip
    sp = SamplingParams(max_tokens=4, prompt_logprobs=3)

    def run(pair) -> list[RequestOutput]:
        sched = Scheduler(pair.slm, pair.llm, router, pair.tokenizer, SchedulerConfig(max_batch=8))
        reqs = [Request(f"p{i}", p, replace(sp, seed=i), routing) for i, p in enumerate(prompts)]
        outs = generate_batch(sched, reqs)
        assert_freed(pair)
        return outs

    want, got = run(hf), run(vllm)
    for a, b in zip(got, want, strict=True):
        assert a.token_ids == b.token_ids and a.prompt_sources == b.prompt_sources
        assert a.prompt_logprobs[0] is None
        for x, y in zip(a.prompt_logprobs[1:], b.prompt_logprobs[1:], strict=True):
            assert x.logprob == pytest.approx(y.logprob, abs=1e-3)
            assert [t for t, _ in x.top] == [t for t, _ in y.top]
    sources = {s for o in got for s in o.prompt_sources[1:]}
    assert sources == ({"slm", "llm"} if mode == "routed" else {mode})
