"""Requests and tokens per minute (rpm / tpm): atomic per window in both stores, shared
by gateway replicas, reset when the minute turns; through a live gateway, OpenAI's
x-ratelimit-* headers and 429 + Retry-After."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tenancy_test_utils import StoreFactory, config


async def test_concurrent_requests_never_pass_the_minute_limits(stores: StoreFactory) -> None:
    async with stores() as a, stores() as b:  # two replicas on one store
        await a.create_tenant("acme", config(100.0, rpm=10, tpm=1000))
        results = await asyncio.gather(
            *(s.take_rate("acme", 10, 1000, 60) for s in [a, b] * 15)  # 30 ask, 60 tokens each
        )
        granted = [r for r in results if r.allowed]
        assert len(granted) == 10  # rpm binds first (10 x 60 = 600 tokens <= 1000)
        assert max(r.requests for r in granted) == 10 and max(r.tokens for r in granted) == 600
        assert all(0 < r.reset_s <= 60 for r in results)
        big = await a.take_rate("acme", None, 1000, 500)  # tpm alone: 600 + 500 > 1000
        assert not big.allowed and big.tokens == 600
        stores.clock.now += 60  # the next minute: counts start again
        fresh = await b.take_rate("acme", 10, 1000, 500)
        assert fresh.allowed and (fresh.requests, fresh.tokens) == (1, 500)


def test_gateway_sends_rate_headers_then_429(gateway) -> None:
    _, key = gateway.new_tenant(limit=1000.0, rpm=2, tpm=100_000)
    body = {"model": "slm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    post = lambda b: httpx.post(gateway.url + "/v1/chat/completions", json=b,  # noqa: E731
                                headers={"Authorization": f"Bearer {key}"}, timeout=60)  # fmt: skip
    first = post(body)
    h = first.headers
    assert first.status_code == 200 and h["x-ratelimit-limit-requests"] == "2"
    assert h["x-ratelimit-remaining-requests"] == "1" and h["x-ratelimit-limit-tokens"] == "100000"
    assert h["x-ratelimit-reset-requests"].endswith("s")
    more = [post(body) for _ in range(4)]  # 5 in a few seconds span at most two minutes
    refused = next(r for r in more if r.status_code != 200)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    too_big = post({**body, "max_tokens": 200_000})
    assert too_big.status_code in (400, 429)  # the cap (400) or the tpm (429) refuses it


@pytest.mark.parametrize("bad", [{"rpm": 0}, {"tpm": -1}])
def test_limits_must_be_positive(bad: dict) -> None:
    with pytest.raises(ValueError, match="must be within"):
        config(1.0, **bad)


def test_a_tenant_created_without_prices_pays_the_default_prices(gateway) -> None:
    from live_gateway import ADMIN_KEY

    from gateway.settings import GatewaySettings

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = httpx.post(gateway.url + "/admin/tenants", headers=admin, timeout=30,
                      json={"id": "no-prices", "config": {"budget": {"limit": 5.0}}})  # fmt: skip
    assert made.status_code == 201, made.text
    defaults = GatewaySettings.model_fields["default_prices"].default.model_dump()
    assert made.json()["config"]["prices"] == defaults and any(defaults.values())
    free = httpx.post(gateway.url + "/admin/tenants", headers=admin, timeout=30, json={
        "id": "free", "config": {"budget": {"limit": 5.0}, "prices": {}}})  # fmt: skip
    assert set(free.json()["config"]["prices"].values()) == {0.0}  # asked for: kept
