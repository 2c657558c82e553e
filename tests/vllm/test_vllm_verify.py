"""One LLM pass verifies a drafted window on the vLLM engine too: each sample offset is
one more request in the step's first generate call, and tokens never change."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from engines.async_engine import generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import Request, RoutingParams, SamplingParams, SeqWork
from router_models.registry import build_router
from tests.engines.helpers import assert_offsets_sample_as_steps
from tests.vllm.test_vllm_equality import assert_freed, llm_share, trace

SEEDED = {"temperature": 0.9, "top_p": 0.95}


@pytest.mark.parametrize("sampling", [{}, {**SEEDED, "logprobs": 2}], ids=["greedy", "seeded"])
def test_a_token_sampled_at_an_offset_is_the_token_a_step_there_samples(vllm, prompts, sampling):
    llm = vllm.llm
    assert llm.info.verifies == (llm.cfg.device == "cuda")  # advertised on cuda only
    sp = SamplingParams(max_tokens=4, **sampling)
    ids = (prompts[0] * 3)[:40]
    out = assert_offsets_sample_as_steps(llm, ids, (0, 17, 33, 39), sp)  # across a block edge
    assert out.sampled[0][-1] == out.tokens[0][0]  # the last offset is the step's own token
    assert llm.cache_len(900) == len(ids)  # the verify requests add nothing to the cache
    with pytest.raises(ValueError, match="sample_offsets"):
        llm.step([SeqWork(902, 0, [3, 4], sp, seed=0, sample_offsets=(2,))])
    llm.free(900)
    assert_freed(vllm)


@pytest.mark.parametrize("sampling", [{}, SEEDED], ids=["greedy", "seeded"])
def test_verifying_on_vllm_never_changes_tokens(hf, vllm, prompts, monkeypatch, sampling) -> None:
    """Verify on vs off (one routed position a pass), 8 requests at once and 2 alone,
    and, greedy, the HF engine's tokens: the same; verifying takes fewer LLM passes."""
    router, thr = build_router("logprob", threshold=0.3)
    sp = SamplingParams(max_tokens=48, **sampling)

    def run(pair, which: list[int]) -> tuple[list, object]:
        cfg = SchedulerConfig(window=8, max_batch=8, seed=0, adaptive_max_batch=0)
        s = Scheduler(pair.slm, pair.llm, router, pair.tokenizer, cfg)
        reqs = [Request(f"r{i}", prompts[i], replace(sp, seed=i), RoutingParams(thr))
                for i in which]  # fmt: skip
        outs = generate_batch(s, reqs)
        assert_freed(pair)
        return outs, s.totals

    every, info = list(range(len(prompts))), vllm.llm.info
    monkeypatch.setattr(vllm.llm, "info", dataclasses.replace(info, verifies=True))
    on, t_on = run(vllm, every)
    alone = [run(vllm, [i])[0][0] for i in (0, 1)]
    monkeypatch.setattr(vllm.llm, "info", dataclasses.replace(info, verifies=False))
    off, t_off = run(vllm, every)
    assert trace(on) == trace(off)
    assert trace(alone) == trace(on[:2])
    assert 0.02 < llm_share(on) < 0.9  # both models wrote tokens
    assert t_on.llm_passes < t_off.llm_passes
    if not sampling:  # vLLM's draws are its own; greedy tokens are the HF engine's
        assert trace(on) == trace(run(hf, every)[0])
