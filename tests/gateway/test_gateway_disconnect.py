"""A client that goes away aborts its request: caches, queue slot and budget hold are
freed, the tokens processed are billed as "aborted" (metrics and usage show it)."""

from __future__ import annotations

import time

import httpx
import pytest
from live_gateway import long_request, metric_value

# The long request runs this many tokens unless aborted: long enough (~0.5 s even
# with the LLM running ahead alone) that the 0.05 s client timeout always lands first.
TOKENS = 320


def wait_idle(gateway, timeout: float = 5.0) -> str:
    """Metrics text once no request is in flight (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        text = gateway.metrics()
        if metric_value(text, "citer:requests_in_flight") == 0:
            return text
        assert time.monotonic() < deadline, "a request is still in flight"
        time.sleep(0.02)


def aborted(text: str) -> float:
    return metric_value(text, "citer:requests_aborted_total", outcome="aborted") or 0.0


@pytest.mark.parametrize("streaming", [True, False])
def test_disconnect_frees_the_request(gateway, streaming: bool) -> None:
    tid, key = gateway.new_tenant(limit=100.0)
    body = long_request(gateway, key, TOKENS)
    tid, key = gateway.new_tenant(limit=100.0)  # a fresh tenant: its usage is this request's
    before = aborted(wait_idle(gateway))
    headers = {"Authorization": f"Bearer {key}"}
    if streaming:
        with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as c:
            with c.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
                lines = r.iter_lines()
                assert next(line for line in lines if line.startswith("data:"))
        # leaving both blocks closed the connection mid-stream
    else:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up before the answer
            httpx.post(gateway.url + "/v1/completions", headers=headers, json=body, timeout=0.05)
    text = wait_idle(gateway)
    assert aborted(text) == before + 1
    assert metric_value(text, "citer:kv_cache_sequences", model="slm") == 0
    assert metric_value(text, "citer:kv_cache_sequences", model="llm") == 0
    assert metric_value(text, "vllm:num_requests_running") == 0
    usage = gateway.usage(tid)
    assert usage["requests"]["aborted"] == 1 and usage["requests"]["completed"] == 0
    assert usage["reserved"] == 0 and usage["active_requests"] == 0
    written = usage["tokens"]["llm_completion"] + usage["tokens"]["slm_completion"]
    assert written < TOKENS // 2  # stopped early, and billed for what ran
    assert usage["spent"] > 0
