"""An edge + cloud pair of real ``citer serve`` processes (the remote LLM engine).

    client -> edge gateway (SLM here, CITER_LLM_URL) -> delaying TCP proxy -> cloud gateway

The cloud keeps its tenants in Redis, so a restarted cloud still accepts the
edge's key. Training-free policies (cloud llm, edge confidence) keep the tests
independent of the demo pair's router card. Tests leave the cloud up and fast.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live_gateway import GatewayProcess, long_request, metric_value

from benchmarks.delay_proxy import DelayProxy

PROMPT = [5, 9, 14, 3, 27, 8]


class EdgeCloud:
    def __init__(self, models, redis_url: str, logs) -> None:
        self.models, self.logs = models, logs
        self.cloud_env = {"REDIS_URL": redis_url, "CITER_TENANCY_NAMESPACE": uuid.uuid4().hex,
                          "CITER_POLICY": "llm"}  # fmt: skip
        self.cloud = self.start_cloud()
        self.cloud_key = self.cloud.new_tenant(limit=1e9)[1]
        self.proxy = DelayProxy(self.cloud.port)
        self.edge = GatewayProcess(
            *models, logs / "edge.log", CITER_LLM_URL=self.proxy.url,
            CITER_LLM_API_KEY=self.cloud_key, CITER_LLM_DEADLINE_S="0.5",
            CITER_LLM_COOLDOWN_S="0.25", CITER_MAX_BATCH="8", CITER_POLICY="confidence",
        )  # fmt: skip
        self.key = self.edge.new_tenant(limit=1e9)[1]

    def start_cloud(self) -> GatewayProcess:
        log = self.logs / f"cloud-{time.monotonic_ns()}.log"
        return GatewayProcess(*self.models, log, **self.cloud_env)

    def post(self, url: str, key: str, **body: Any) -> dict[str, Any]:
        body = {"model": "llm", "prompt": PROMPT, "max_tokens": 12, "temperature": 0, **body}
        r = httpx.post(f"{url}/v1/completions", json=body, timeout=120,
                       headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert r.status_code == 200, r.text
        return r.json()

    def ask_edge(self, **body: Any) -> dict[str, Any]:
        return self.post(self.edge.url, self.key, **body)

    def wait_for_llm_tokens(self, timeout: float = 60.0) -> dict[str, Any]:
        """Edge answers until the cloud writes tokens again (cooldowns, restarts)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.ask_edge(max_tokens=4)
            if out["usage"]["llm_tokens"] or time.monotonic() > deadline:
                return out
            time.sleep(0.2)


@pytest.fixture(scope="module")
def pair(gateway_models, redis_url, tmp_path_factory) -> Iterator[EdgeCloud]:
    ec = EdgeCloud(gateway_models, redis_url, tmp_path_factory.mktemp("edge"))
    yield ec
    ec.edge.stop()
    ec.proxy.close()
    ec.cloud.stop()


def test_the_edge_answers_with_the_clouds_llm_tokens(pair: EdgeCloud) -> None:
    want = pair.post(pair.cloud.url, pair.cloud_key, max_tokens=24, return_token_ids=True)
    got = pair.ask_edge(max_tokens=24, return_token_ids=True)
    assert got["choices"][0]["token_ids"] == want["choices"][0]["token_ids"]
    assert got["choices"][0]["text"] == want["choices"][0]["text"]
    usage = got["usage"]
    assert usage["llm_tokens"] == usage["completion_tokens"] and usage["llm_fallback_tokens"] == 0
    routed = pair.ask_edge(model="citer", routing={"return_sources": True}, max_tokens=24)
    assert routed["usage"]["llm_fallback_tokens"] == 0
    assert not any("fallback" in s for s in routed["choices"][0]["sources"])
    auth = {"Authorization": f"Bearer {pair.key}"}
    card = httpx.get(f"{pair.edge.url}/v1/models/llm", headers=auth).json()
    assert card["citer"]["model"] == f"llm at {pair.proxy.url}/v1"
    assert metric_value(pair.edge.metrics(), "citer:remote_llm_calls_total", outcome="ok") > 0


def stream_events(url: str, key: str, body: dict[str, Any], on_token) -> list[dict[str, Any]]:
    """The chunks of a streamed completion; ``on_token(n)`` after the n-th token chunk."""
    chunks, n = [], 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {key}"}) as r:  # fmt: skip
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: {"):
                chunks.append(json.loads(line[6:]))
                if chunks[-1]["choices"] and chunks[-1]["choices"][0].get("sources"):
                    n += 1
                    on_token(n)
    return chunks


def test_cloud_killed_mid_request_the_slm_finishes_it_then_routing_resumes(pair) -> None:
    body = long_request(pair.cloud, pair.cloud_key, 120)  # the LLM alone runs 120 tokens
    body.update(stream=True, stream_options={"include_usage": True},
                routing={"return_sources": True})  # fmt: skip
    pair.proxy.delay_s = 0.03  # keeps the request running long after the kill
    killed_at = []

    def kill(n: int) -> None:
        if n == 3 and not killed_at:
            pair.cloud.proc.kill()
            killed_at.append(n)

    try:
        chunks = stream_events(pair.edge.url, pair.key, body, kill)
    finally:
        pair.proxy.delay_s = 0.0
    sources = [s for c in chunks if c["choices"] for s in c["choices"][0].get("sources") or []]
    usage = chunks[-1]["usage"]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert killed_at and finish[-1] in ("stop", "length")
    assert usage["completion_tokens"] == len(sources) > 3
    fell = [i for i, s in enumerate(sources) if s.get("fallback")]
    assert usage["llm_fallback_tokens"] == len(fell) > 0
    assert usage["llm_tokens"] == fell[0] >= 3  # the LLM wrote everything before the kill
    assert all(s.get("fallback") and s["source"] == "slm" for s in sources[fell[0] :])
    metrics = pair.edge.metrics()
    assert metric_value(metrics, "citer:llm_fallback_tokens_total", model_name="llm") >= len(fell)
    assert metric_value(metrics, "citer:remote_llm_calls_total", outcome="unreachable") >= 1

    pair.cloud.stop()
    pair.cloud = pair.start_cloud()  # same tenant store: the edge's key still works
    pair.proxy.upstream_port = pair.cloud.port
    back = pair.wait_for_llm_tokens()
    assert back["usage"]["llm_tokens"] == back["usage"]["completion_tokens"] > 0
    assert back["usage"]["llm_fallback_tokens"] == 0
    assert metric_value(pair.edge.metrics(), "citer:remote_llm_circuit_open") == 0


def test_a_cloud_slower_than_the_deadline_falls_back_without_hanging(pair) -> None:
    pair.wait_for_llm_tokens()
    pair.proxy.delay_s = 1.0  # a 2 s round trip against a 0.5 s deadline
    try:
        t = time.perf_counter()
        out = pair.ask_edge(max_tokens=16)
        took = time.perf_counter() - t
    finally:
        pair.proxy.delay_s = 0.0
    usage = out["usage"]
    assert usage["llm_tokens"] == 0 and usage["llm_fallback_tokens"] == usage["completion_tokens"]
    assert took < 8.0  # each probe costs one deadline; the circuit skips the rest
    assert metric_value(pair.edge.metrics(), "citer:remote_llm_calls_total", outcome="timeout")
    back = pair.wait_for_llm_tokens()
    assert back["usage"]["llm_tokens"] > 0 and back["usage"]["llm_fallback_tokens"] == 0
