"""Guards around the request path: per-tenant /metrics behind a key, weak admin keys on
public binds, client disconnects while the body is read, tokenization off the event
loop, queue deadlines below the hold TTL, hold renewal and the admin holds API."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from live_gateway import (
    ADMIN_KEY,
    ThreadGateway,
    demo_pair,
    free_port,
    metric_value,
)
from pydantic import ValidationError

from gateway.settings import GatewaySettings

METRICS_KEY = "m" * 40


@pytest.fixture(scope="module")
def tight(gateway_models) -> Iterator[ThreadGateway]:
    """In process (so a test can slow its engines): one batch slot, a 0.5 s queue
    deadline, 1 s budget holds (the shortest allowed), and a metrics key."""
    with pytest.MonkeyPatch.context() as mp:  # read by TenancySettings at start-up only
        mp.setenv("CITER_TENANCY_RESERVATION_TTL_S", "1")
        settings = GatewaySettings(
            slm=str(gateway_models[0]), llm=str(gateway_models[1]), port=free_port(),
            admin_key=ADMIN_KEY, metrics_key=METRICS_KEY, max_batch=1, queue_timeout_s=0.5,
            policy=None if demo_pair() else "confidence",
        )  # fmt: skip
        gw = ThreadGateway(settings)
    assert gw.state.hold_ttl_s == 1.0
    yield gw
    gw.stop()


class Slow:
    """Wraps an engine: every step takes at least ``delay_s`` longer, so a request's
    duration does not depend on how fast this machine runs the models."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.info, self.delay_s = inner, inner.info, delay_s

    def step(self, work, features=None):
        time.sleep(self.delay_s)
        return self.inner.step(work, features)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_metrics_show_tenants_only_with_a_key(tight) -> None:
    tid, key = tight.new_tenant(limit=100.0)
    r = httpx.post(f"{tight.url}/v1/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"model": "slm", "prompt": "hi", "max_tokens": 2}, timeout=60)  # fmt: skip
    assert r.status_code == 200
    public = httpx.get(f"{tight.url}/metrics", timeout=10)
    assert public.status_code == 200 and tid not in public.text and 'tenant="' not in public.text
    assert metric_value(public.text, "citer:budget_spend_total") > 0  # summed over tenants
    for k in (METRICS_KEY, ADMIN_KEY):
        full = httpx.get(f"{tight.url}/metrics", headers={"Authorization": f"Bearer {k}"})
        assert metric_value(full.text, "citer:budget_spend_total", tenant=tid) > 0
    wrong = httpx.get(f"{tight.url}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize("key", ["sk-citer-admin-dev", "short-key"])
def test_weak_admin_keys_are_refused_on_public_binds(key) -> None:
    with pytest.raises(ValidationError, match="not a loopback address"):
        GatewaySettings(host="0.0.0.0", admin_key=key)
    assert GatewaySettings(host="127.0.0.1", admin_key=key).admin_key is not None
    assert GatewaySettings(host="0.0.0.0", admin_key="k" * 32).admin_key is not None
    env = {**os.environ, "CITER_HOST": "0.0.0.0", "CITER_ADMIN_KEY": key, "CITER_PORT": "0"}
    proc = subprocess.run([sys.executable, "-m", "citer.cli", "serve"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "CITER_ADMIN_KEY" in proc.stdout + proc.stderr


def test_queue_deadline_must_stay_below_the_hold_ttl() -> None:
    with pytest.raises(ValidationError, match="CITER_QUEUE_TIMEOUT_S"):
        GatewaySettings(queue_timeout_s=600)


def test_a_client_leaving_mid_body_is_a_client_abort_not_an_error(gateway) -> None:
    _, key = gateway.new_tenant()
    before = metric_value(gateway.metrics(), "citer:requests_client_closed_total") or 0
    host, port = "127.0.0.1", int(gateway.url.rsplit(":", 1)[1])
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 5000\r\n\r\n"
    )
    with socket.create_connection((host, port)) as sock:
        sock.sendall(head.encode() + b'{"model": "citer"')
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = metric_value(gateway.metrics(), "citer:requests_client_closed_total") or 0
        if now > before:
            break
        time.sleep(0.1)
    assert now == before + 1
    assert "unhandled error" not in gateway.log.read_text()


@pytest.fixture(scope="module")
def inproc(gateway_models) -> Iterator[ThreadGateway]:
    """The gateway on a thread of this process, so a test can reach into its state."""
    settings = GatewaySettings(
        slm=str(gateway_models[0]), llm=str(gateway_models[1]), port=free_port(),
        admin_key=ADMIN_KEY, policy=None if demo_pair() else "confidence",
    )  # fmt: skip
    gw = ThreadGateway(settings)
    yield gw
    gw.stop()


def test_tokenization_runs_off_the_event_loop(inproc) -> None:
    tok = inproc.state.tokenizer
    seen: list[threading.Thread] = []
    real_encode, real_template = tok.encode, tok.apply_chat_template

    def encode(*a, **kw):
        seen.append(threading.current_thread())
        return real_encode(*a, **kw)

    def template(*a, **kw):
        seen.append(threading.current_thread())
        return real_template(*a, **kw)

    tok.encode, tok.apply_chat_template = encode, template
    try:
        _, key = inproc.new_tenant()
        headers = {"Authorization": f"Bearer {key}"}
        msg = [{"role": "user", "content": "hi"}]
        for path, body in (
            ("/v1/completions", {"prompt": "hi"}),
            ("/v1/chat/completions", {"messages": msg}),
        ):
            r = httpx.post(
                f"{inproc.url}{path}",
                headers=headers,
                json={"model": "slm", "max_tokens": 2, **body},
            )
            assert r.status_code == 200, r.text
    finally:
        del tok.encode, tok.apply_chat_template
    assert len(seen) >= 2 and inproc.thread not in seen  # never the event loop's thread


class Poisoned:
    """Wraps an engine: any batch holding work of seed 666 raises (an injected fault)."""

    def __init__(self, inner) -> None:
        self.inner, self.info = inner, inner.info

    def step(self, work, features=None):
        if any(w.seed == 666 for w in work):
            raise OverflowError("injected fault")
        return self.inner.step(work, features)

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def test_an_engine_fault_fails_only_its_own_request(inproc) -> None:
    """Through HTTP: one request whose work raises in the SLM step gets a 500 and is
    billed what ran; 6 others decoding in the same batches finish with their tokens."""
    tid, key = inproc.new_tenant()
    headers = {"Authorization": f"Bearer {key}"}
    prompts = ["12+30=", "hello", "sort: 9 8 7", "A shop has", "xyz", "7+8="]

    def body(p: str, seed: int) -> dict:
        return {"model": "citer", "prompt": p, "max_tokens": 24, "temperature": 1.0, "seed": seed}

    async with httpx.AsyncClient(base_url=inproc.url, headers=headers, timeout=120) as c:
        alone = [
            (await c.post("/v1/completions", json=body(p, i))).json() for i, p in enumerate(prompts)
        ]
        sched = inproc.state.scheduler
        sched.slm = Poisoned(sched.slm)
        try:
            answers = await asyncio.gather(
                c.post("/v1/completions", json=body("hello", 666)),
                *(c.post("/v1/completions", json=body(p, i)) for i, p in enumerate(prompts)),
            )
        finally:
            sched.slm = sched.slm.inner
    bad, *good = answers
    assert bad.status_code == 500 and "injected fault" in bad.json()["error"]["message"]
    for want, got in zip(alone, good, strict=True):
        assert got.status_code == 200, got.text
        assert got.json()["choices"][0]["text"] == want["choices"][0]["text"]
    usage = inproc.usage(tid)
    assert usage["requests"]["failed"] == 1 and usage["reserved"] == 0
    assert inproc.state.engine.alive


async def test_queued_requests_time_out_and_running_ones_keep_their_holds(tight) -> None:
    """One slot, holds of 1 s, queue deadline 0.5 s: a request that runs longer than
    the TTL keeps its hold (renewed), queued ones get 503 + Retry-After and release
    theirs, and the tenant is charged exactly what its answers cost, within its limit.
    The LLM is slowed by 0.2 s a step, so the long request outlives the TTL anywhere."""
    body = {"model": "llm", "prompt": "What is 4587 + 2396?", "max_tokens": 60, "temperature": 0}
    tid, key = tight.new_tenant(limit=50.0)
    headers = {"Authorization": f"Bearer {key}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    sched = tight.state.scheduler
    sched.llm = Slow(sched.llm, 0.2)  # the LLM writes up to 4 tokens a step: >= 3 s
    async with httpx.AsyncClient(base_url=tight.url, timeout=120) as c:
        started = time.monotonic()
        first = asyncio.create_task(c.post("/v1/completions", json=body, headers=headers))
        await asyncio.sleep(0.3)
        queued = await asyncio.gather(
            *(
                c.post("/v1/completions", json={**body, "stream": s}, headers=headers)
                for s in (False, True)
            )
        )
        while not first.done() and time.monotonic() - started < 1.4:
            await asyncio.sleep(0.05)  # until past the 1 s TTL of the first's hold
        running = not first.done()
        holds = (await c.get(f"/admin/tenants/{tid}/holds", headers=admin)).json()["data"]
        checked_at = time.time()
        done = await first
    sched.llm = sched.llm.inner
    assert done.status_code == 200, done.text
    assert done.json()["usage"]["completion_tokens"] >= 16  # >= 4 slow steps: > 1.4 s
    assert running, "the long request ended before its hold's TTL: make it longer"
    assert len(holds) == 1 and holds[0]["expires_at"] > checked_at  # renewed, still live
    for r in queued:
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "queue_timeout" and r.headers["retry-after"]
    usage = tight.usage(tid)
    assert usage["reserved"] == 0 and usage["active_requests"] == 0
    assert usage["spent"] == pytest.approx(done.json()["usage"]["cost"])
    assert usage["spent"] <= 50.0 and usage["requests"]["completed"] == 1


def test_admin_releases_holds_left_behind(redis_gateway, redis_url) -> None:
    """Holds a killed replica left in Redis: listed, named in the 429, released."""
    import asyncio as aio

    from gateway.tenancy import open_store

    tid, key = redis_gateway.new_tenant(limit=0.5)
    ns = redis_gateway.namespace

    async def leave_holds() -> None:
        store = await open_store(redis_url, namespace=ns)
        for _ in range(2):
            await store.reserve(tid, 0.25)
        await store.close()

    aio.run(leave_holds())
    r = httpx.post(
        f"{redis_gateway.url}/v1/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "slm", "prompt": "hi", "max_tokens": 2},
        timeout=60,
    )
    assert r.status_code == 429 and "live holds reserve 0.5" in r.json()["error"]["message"]
    with redis_gateway.admin() as c:
        listed = c.get(f"/admin/tenants/{tid}/holds").json()["data"]
        assert len(listed) == 2 and all(h["amount"] == 0.25 for h in listed)
        assert c.delete(f"/admin/tenants/{tid}/holds/{listed[0]['id']}").json()["released"]
        assert c.delete(f"/admin/tenants/{tid}/holds/nope").status_code == 404
        assert c.delete(f"/admin/tenants/{tid}/holds").json() == {"released": 1}
        assert c.get(f"/admin/tenants/{tid}/holds").json()["data"] == []
    assert redis_gateway.usage(tid)["reserved"] == 0


async def test_load_clients_read_public_metrics_with_a_tenant_key_set(gateway) -> None:
    """The benchmark and load-test clients carry a tenant key for /v1; their /metrics
    scrape drops it (a tenant key is no metrics credential) and still gets counters."""
    from benchmarks.serving_client import scrape

    _, key = gateway.new_tenant()
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as c:
        assert (await c.get("/metrics")).status_code == 401
        counters = await scrape(c)
    assert counters is not None and "router_s" in counters
