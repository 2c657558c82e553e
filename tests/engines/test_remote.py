"""The remote LLM engine against a second live gateway (``citer serve``) serving the LLM.

The edge half runs here (HF SLM + RemoteEngine in the real scheduler); the cloud
half is a real process reached over loopback, through a delaying TCP proxy where
a test needs a slow network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.delay_proxy import DelayProxy
from engines.async_engine import generate_batch
from engines.hf import HFEngine, HFEngineConfig, load_tokenizer
from engines.remote import RemoteConfig, RemoteEngine
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import Request, RoutingParams, SamplingParams, SeqWork
from tests.engines.helpers import ConstRouter, ModRouter, Score
from tests.engines.test_scheduler import SAMPLED
from tests.gateway.live_gateway import GatewayProcess, demo_pair, free_port

POLICIES = {  # router, routing: the three ways the scheduler asks the LLM for tokens
    "all-llm": (ModRouter(), {"threshold": float("-inf")}),  # spans of up to `window`
    "llm-at-every-cut": (ConstRouter(1.0), {}),  # one token per call, after an SLM draft
    "routed": (ModRouter(), {}),  # SLM drafts, the LLM at the cuts
}


@pytest.fixture(scope="module")
def pair(model_dirs) -> tuple[Path, Path]:
    """The demo pair once trained, else the tiny random pair (token-id prompts only)."""
    return demo_pair() or model_dirs


@pytest.fixture(scope="module")
def local(pair):
    slm, llm = (HFEngine(HFEngineConfig(str(p))) for p in pair)
    return slm, llm, load_tokenizer(str(pair[0]))


@pytest.fixture(scope="module")
def cloud(pair, tmp_path_factory) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway serving the pair (its model "llm" is the LLM alone) and an API key;
    policy llm: no router card needed, whatever state the demo pair's card is in."""
    log = tmp_path_factory.mktemp("cloud") / "cloud.log"
    gw = GatewayProcess(*pair, log, CITER_POLICY="llm")
    try:
        yield gw, gw.new_tenant(limit=1e9)[1]
    finally:
        gw.stop()


def remote(local, url: str, key: str | None, **cfg) -> RemoteEngine:
    slm = local[0].info
    return RemoteEngine(
        RemoteConfig(url, api_key=key, **cfg), slm.vocab_size, slm.eos_token_ids, slm.max_context
    )


def prompts(local, n: int) -> list[list[int]]:
    vocab = len(local[2])
    return [[(37 * i + 11 * j) % (vocab - 3) + 3 for j in range(3 + 5 * i)] for i in range(n)]


def requests(local, policy: str, n: int = 5, max_tokens: int = 24, **sampling) -> list[Request]:
    routing = RoutingParams(**POLICIES[policy][1])
    return [
        Request(f"r{i}", p, SamplingParams(max_tokens=max_tokens, seed=i, **sampling), routing)
        for i, p in enumerate(prompts(local, n))
    ]


def trace(out) -> tuple[list[int], list[str], list[float | None]]:
    """Tokens, sources and scores (NaN, a run without router scores, as None)."""
    return out.token_ids, out.sources, [None if x != x else Score(x) for x in out.scores]


def decode(local, llm, policy: str, reqs: list[Request], window: int = 4):
    sched = Scheduler(local[0], llm, POLICIES[policy][0], local[2], SchedulerConfig(window=window))
    return generate_batch(sched, reqs)


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("policy", list(POLICIES))
def test_remote_llm_writes_the_local_llms_tokens(local, cloud, policy: str, sampling) -> None:
    gw, key = cloud
    llm = remote(local, gw.url, key)
    try:
        assert llm.positional  # a citer server: the request's own seed, position-keyed
        reqs = requests(local, policy, **sampling)
        want = [trace(o) for o in decode(local, local[1], policy, reqs)]
        got = decode(local, llm, policy, reqs)
        assert [trace(o) for o in got] == want
        assert not llm.stats.failed and llm.stats.ok > 0
        assert sum(o.stats.llm_fallback_tokens for o in got) == 0
        sources = {s for o in got for s in o.sources}
        assert sources == ({"slm", "llm"} if policy == "routed" else {"llm"})
        if policy == "all-llm":  # the LLM's runs go out as spans, not one call per token
            assert llm.stats.tokens_received > 1.5 * llm.stats.ok
        assert llm.num_caches() == 0
    finally:
        llm.close()


def test_remote_log_probs_are_the_llms(local, cloud) -> None:
    gw, key = cloud
    llm = remote(local, gw.url, key)
    try:
        reqs = requests(local, "all-llm", n=2, max_tokens=8, temperature=0.0, logprobs=3)
        (want, _), (got, _) = (decode(local, e, "all-llm", reqs) for e in (local[1], llm))
        assert got.token_ids == want.token_ids and len(got.logprobs) == len(got.token_ids)
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
        for g, w in zip(got.top_logprobs, want.top_logprobs, strict=True):
            assert [t for t, _ in g] == [t for t, _ in w] and len(g) == 3
    finally:
        llm.close()


def test_start_up_refuses_a_model_the_server_does_not_serve(local, cloud) -> None:
    gw, key = cloud
    with pytest.raises(ValueError, match="does not serve model 'big'.*CITER_LLM_MODEL"):
        remote(local, gw.url, key, model="big")
    with pytest.raises(ValueError, match="llm_deadline_s=0"):
        RemoteConfig(gw.url, deadline_s=0)
    with pytest.raises(ValueError, match="http"):
        RemoteConfig("cloud:8000")
    assert RemoteConfig(gw.url).base_url == gw.url + "/v1" == RemoteConfig(gw.url + "/v1/").base_url


def one_step(llm: RemoteEngine, local) -> tuple[str | None, float]:
    """(failure reason or None, seconds) of a one-token call for a fresh sequence."""
    work = SeqWork(1, 0, prompts(local, 1)[0], SamplingParams(temperature=0.0), 0, 1)
    t = time.perf_counter()
    out = llm.step([work])
    llm.free(1)
    return (out.failed or [None])[0], time.perf_counter() - t


def test_unreachable_server_fails_fast_and_the_circuit_skips_calls(local) -> None:
    llm = remote(local, f"http://127.0.0.1:{free_port()}", None, cooldown_s=0.3, retries=2)
    try:
        assert llm.positional is None  # started although nothing answered (fail open)
        reason, took = one_step(llm, local)
        assert reason == "unreachable" and took < 1.0
        assert llm.stats.attempts == 3  # the first try and two retries
        reason, took = one_step(llm, local)
        assert reason == "circuit_open" and took < 0.05 and llm.stats.attempts == 3
        time.sleep(0.35)  # the cooldown is over: the next step tries the server again
        assert one_step(llm, local)[0] == "unreachable" and llm.stats.attempts == 6
    finally:
        llm.close()


def test_a_slow_server_times_out_at_the_deadline_and_is_used_again(local, cloud) -> None:
    gw, key = cloud
    proxy = DelayProxy(gw.port, delay_s=0.6)  # a round trip takes 1.2 s
    llm = remote(local, proxy.url, key, deadline_s=0.3, cooldown_s=0.2)
    try:
        reason, took = one_step(llm, local)
        assert reason == "timeout" and 0.3 <= took < 0.6
        reqs = requests(local, "all-llm", n=3, max_tokens=12, temperature=0.0)
        t = time.perf_counter()
        outs = decode(local, llm, "all-llm", reqs)
        assert time.perf_counter() - t < 3.0  # the circuit keeps most steps off the network
        assert all(o.stats.llm_fallback_tokens == len(o.token_ids) for o in outs)
        proxy.delay_s = 0.0  # the network recovers: no restart needed
        time.sleep(3.3)  # past the longest cooldown reached above (0.2 s x 16)
        assert one_step(llm, local)[0] is None
        outs = decode(local, llm, "all-llm", reqs)
        assert all(o.sources == ["llm"] * len(o.token_ids) for o in outs)
    finally:
        llm.close()
        proxy.close()
