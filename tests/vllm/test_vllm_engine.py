"""The vLLM engine itself: config checks, the protocol's cache counters over vLLM's
prefix cache, aborts, and what it tells routers it can give."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.hf import ModelLoadError
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import FINISH_ABORT, Request, RoutingParams, SamplingParams, SeqWork
from engines.vllm_engine import VLLMEngine, VLLMEngineConfig, build_vllm_pair
from router_models.base import FEATURE_TOKEN, FEATURE_TOPK
from router_models.registry import build_router

GREEDY = SamplingParams(max_tokens=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "tpu"}, "device='tpu'"),
        ({"dtype": "fp8"}, "dtype='fp8'"),
        ({"gpu_memory_fraction": 1.5}, "gpu_memory_fraction=1.5"),
        ({"kv_cache_gib": 0}, "kv_cache_gib=0"),
        ({"block_size": 0}, "block_size=0"),
        ({"max_num_seqs": 0}, "max_num_seqs=0"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VLLMEngineConfig("x", **kwargs)


def test_bad_folder_device_or_split_is_a_clear_error(tmp_path: Path, demo) -> None:
    with pytest.raises(ModelLoadError, match=f"^{tmp_path}: no config.json"):
        VLLMEngine(VLLMEngineConfig(str(tmp_path)))
    with pytest.raises(ValueError, match="device='cuda' but the installed vLLM runs on 'cpu'"):
        VLLMEngine(VLLMEngineConfig(demo[0], device="cuda"))
    a, b = VLLMEngineConfig(demo[0], "cuda", gpu_memory_fraction=0.5), VLLMEngineConfig(demo[1])
    with pytest.raises(ValueError, match="one device for both"):
        build_vllm_pair(a, b)
    with pytest.raises(ValueError, match=r"GPU memory split 0.5 \(SLM\) \+ 0.5 \(LLM\)"):
        build_vllm_pair(a, VLLMEngineConfig(demo[1], "cuda", gpu_memory_fraction=0.5))


def test_info_declares_log_prob_features_only(vllm, hf) -> None:
    for v, h in ((vllm.slm, hf.slm), (vllm.llm, hf.llm)):
        assert v.info.features == (FEATURE_TOKEN, FEATURE_TOPK)  # no hidden states, no logits
        assert (v.info.hidden_size, v.info.vocab_size, v.info.max_context) == (
            h.info.hidden_size, h.info.vocab_size, h.info.max_context)  # fmt: skip
        assert v.info.eos_token_ids == h.info.eos_token_ids


def test_catch_up_prefills_only_the_new_tokens(vllm, prompts) -> None:
    """The cache counters follow the protocol; vLLM's prefix cache does the catch-up."""
    e = vllm.llm
    block = e.block_size
    prompt = [t for p in prompts for t in p]  # > 3 blocks
    assert len(prompt) > 3 * block
    out = e.step([SeqWork(7, 0, prompt, GREEDY, 0, n_out=3)])
    assert e.cache_len(7) == len(prompt) + 2  # two drafts fed back, the last one not
    e.crop(7, len(prompt))  # the drafts were not committed
    computed, cached = e.prefill_tokens, e.cached_tokens
    new = [out.tokens[0][0], 5, 6]
    again = e.step([SeqWork(7, len(prompt), new, GREEDY, 0)])
    assert e.prefill_tokens - computed <= block + len(new)  # the partial block + the new ones
    assert e.cached_tokens - cached >= len(prompt) - block
    e.free(7)
    fresh = e.step([SeqWork(8, 0, prompt + new, GREEDY, 0)])  # no cache: same token
    assert fresh.tokens == again.tokens
    e.free(8)
    with pytest.raises(ValueError, match="work starts at 3 but the cache holds 0"):
        e.step([SeqWork(9, 3, [1], GREEDY, 0)])
    with pytest.raises(ValueError, match="probe rows score given targets only"):
        e.step([SeqWork(9, 0, [1, 2], GREEDY, 0, probe_offsets=(0,))])
    assert e.num_caches() == 0 and e.num_requests() == 0


def test_abort_frees_both_engines(vllm, prompts) -> None:
    router, thr = build_router("logprob", threshold=0.2)
    sched = Scheduler(vllm.slm, vllm.llm, router, vllm.tokenizer, SchedulerConfig(window=4))
    for i, p in enumerate(prompts[:3]):
        sched.add_request(Request(f"a{i}", p, SamplingParams(max_tokens=200), RoutingParams(thr)))
    for _ in range(4):
        sched.step()
    seqs = {rid: s.seq_id for rid, s in sched.running.items()}
    assert len(seqs) == 3 and vllm.slm.num_caches() == 3
    assert vllm.llm.num_caches() >= 1  # the LLM holds at least one sequence
    sched.abort("a0")
    sched.abort("a1")
    events = sched.step()
    assert {e.request_id for e in events if e.finish_reason == FINISH_ABORT} == {"a0", "a1"}
    for e in (vllm.slm, vllm.llm):
        assert e.cache_len(seqs["a0"]) == e.cache_len(seqs["a1"]) == 0
        assert e.num_caches() <= 1 and e.num_requests() == 0
    sched.abort("a2")
    sched.step()
    assert not sched.has_work()
    assert vllm.slm.num_caches() == vllm.llm.num_caches() == 0
    assert vllm.slm.num_requests() == vllm.llm.num_requests() == 0
