"""Budgets through the live gateway: concurrency never overspends (embedded store and
Redis), degrade/ceilings, tenant isolation, key revocation."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from live_gateway import PRICES

MSG = [{"role": "user", "content": "sort 3 1 2"}]
N = 50  # concurrent requests on one tenant
MAX_TOKENS = 6


def worst_case(prompt: int, max_tokens: int, llm: bool) -> float:
    """The gateway's reservation (cost units), from the test's own prices."""
    p = PRICES
    if not llm:
        return (
            prompt * p["slm_prompt"] + max_tokens * (p["slm_completion"] + p["slm_prompt"])
        ) / 1e3
    per_token = max(p["slm_completion"], p["llm_completion"]) + p["slm_prompt"] + p["llm_prompt"]
    return (prompt * (p["slm_prompt"] + p["llm_prompt"]) + max_tokens * per_token) / 1e3


def prompt_tokens(gw) -> int:
    _, key = gw.new_tenant()
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    r = client.chat.completions.create(model="slm", messages=MSG, max_tokens=1, temperature=0)
    return r.usage.prompt_tokens


@pytest.mark.parametrize("store", ["embedded", "redis"])
def test_concurrent_requests_never_overspend(store: str, request: pytest.FixtureRequest) -> None:
    gw = request.getfixturevalue("gateway" if store == "embedded" else "redis_gateway")
    limit = 6 * worst_case(prompt_tokens(gw), MAX_TOKENS, llm=True)  # ~6 worst cases at once
    tid, key = gw.new_tenant(limit=limit, policy="reject")

    async def one(client: openai.AsyncOpenAI, i: int) -> float | str:
        try:
            r = await client.chat.completions.create(
                model="citer", messages=MSG, max_tokens=MAX_TOKENS, temperature=0.7, seed=i
            )
        except openai.RateLimitError as e:
            return str(e.code)
        return r.usage.model_extra["cost"]

    async def main() -> list[float | str]:
        client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        return await asyncio.gather(*(one(client, i) for i in range(N)))

    results = asyncio.run(main())
    costs = [c for c in results if isinstance(c, float)]
    refused = [c for c in results if isinstance(c, str)]
    assert len(costs) + len(refused) == N and costs and refused
    assert set(refused) == {"insufficient_quota"}
    usage = gw.usage(tid)
    assert usage["spent"] <= limit + 1e-6
    assert usage["spent"] == pytest.approx(sum(costs), abs=1e-6 * N)
    assert usage["reserved"] == 0 and usage["active_requests"] == 0
    assert usage["requests"]["completed"] == len(costs)
    assert usage["requests"]["rejected"] == len(refused)


def test_degrade_serves_with_the_slm_and_says_so(gateway) -> None:
    n = prompt_tokens(gateway)
    slm, full = worst_case(n, MAX_TOKENS, False), worst_case(n, MAX_TOKENS, True)
    tid, key = gateway.new_tenant(limit=(slm + full) / 2, policy="degrade")
    r = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "llm", "messages": MSG, "max_tokens": MAX_TOKENS, "temperature": 0},
    )
    assert r.status_code == 200 and r.headers["x-citer-degraded"] == "budget"
    body = r.json()
    assert body["routing"]["degraded"] is True and body["usage"]["llm_tokens"] == 0
    assert gateway.usage(tid)["requests"]["degraded"] == 1


def test_tenant_llm_share_ceiling_caps_every_request(gateway) -> None:
    """The ceiling is exact per position: the LLM writes position i iff
    (LLM tokens before i + 1) / (i + 1) <= 0.25 (model llm wants every position)."""
    _, key = gateway.new_tenant(limit=100.0, max_llm_share=0.25)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    r = client.completions.create(
        model="llm", prompt="abc", max_tokens=8, temperature=0,
        extra_body={"routing": {"return_sources": True}},
    )  # fmt: skip
    sources = [s["source"] for s in r.choices[0].model_extra["sources"]]
    want: list[str] = []
    for i in range(len(sources)):
        want.append("llm" if (want.count("llm") + 1) / (i + 1) <= 0.25 else "slm")
    assert sources == want and len(sources) >= 4  # slm, slm, slm, llm, ...
    assert r.usage.model_extra["llm_tokens"] == want.count("llm")


def test_tenants_are_isolated_and_revoked_keys_fail_at_once(gateway) -> None:
    a_id, a_key = gateway.new_tenant(limit=50.0)
    b_id, b_key = gateway.new_tenant(limit=70.0)
    a = openai.OpenAI(base_url=gateway.url + "/v1", api_key=a_key, max_retries=0)
    a.chat.completions.create(model="citer", messages=MSG, max_tokens=3, temperature=0)
    own = httpx.get(gateway.url + "/v1/usage", headers={"Authorization": f"Bearer {b_key}"})
    assert own.json()["tenant_id"] == b_id and own.json()["spent"] == 0  # A's spend is not B's
    assert gateway.usage(a_id)["spent"] > 0
    for path in (f"/admin/tenants/{a_id}/usage", "/admin/tenants"):  # tenant keys are no admin
        r = httpx.get(gateway.url + path, headers={"Authorization": f"Bearer {b_key}"})
        assert r.status_code == 401
    with gateway.admin() as admin:
        key_id = admin.get(f"/admin/tenants/{a_id}/keys").json()["data"][0]["key_id"]
        assert admin.delete(f"/admin/tenants/{a_id}/keys/{key_id}").json()["revoked"] is True
        assert admin.delete(f"/admin/tenants/{b_id}/keys/{key_id}").status_code == 404
    with pytest.raises(openai.AuthenticationError):
        a.chat.completions.create(model="citer", messages=MSG, max_tokens=3)


def test_admin_api_updates_budgets_and_policies(gateway) -> None:
    tid, key = gateway.new_tenant(limit=0.0001, policy="reject")
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "citer", "messages": MSG, "max_tokens": 2}
    url = gateway.url + "/v1/chat/completions"
    assert httpx.post(url, headers=headers, json=body).status_code == 429
    with gateway.admin() as admin:
        form = {"Content-Type": "application/x-www-form-urlencoded"}  # what curl -d sends
        r = admin.patch(
            f"/admin/tenants/{tid}",
            content=b'{"budget": {"limit": 100, "period": "1h"}}',
            headers=form,
        )
        assert r.status_code == 200 and r.json()["config"]["budget"]["period"] == "1h"
        assert admin.patch(f"/admin/tenants/{tid}", json={"policy": "queue"}).status_code == 400
        assert (
            admin.post("/admin/tenants", json={"id": tid, "config": r.json()["config"]}).status_code
            == 409
        )
        assert admin.get("/admin/tenants/nobody").status_code == 404
        assert tid in admin.get("/admin/tenants").json()["data"]
    assert httpx.post(url, headers=headers, json=body).status_code == 200  # takes effect at once


def test_redis_state_survives_a_gateway_restart(gateway_models, redis_url, tmp_path) -> None:
    from live_gateway import GatewayProcess

    env = {"REDIS_URL": redis_url, "CITER_TENANCY_NAMESPACE": "restart-" + tmp_path.name[-8:]}
    first = GatewayProcess(*gateway_models, tmp_path / "first.log", **env)
    try:
        tid, key = first.new_tenant(limit=10.0)
        client = openai.OpenAI(base_url=first.url + "/v1", api_key=key, max_retries=0)
        usage = client.completions.create(model="citer", prompt="ab", max_tokens=3).usage
        spent = first.usage(tid)["spent"]
        assert spent == pytest.approx(usage.model_extra["cost"]) and spent > 0
    finally:
        first.stop()
    second = GatewayProcess(*gateway_models, tmp_path / "second.log", **env)
    try:
        assert second.usage(tid)["spent"] == pytest.approx(spent)  # same tenant, same spend
        client = openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0)
        assert client.completions.create(model="slm", prompt="ab", max_tokens=2).usage
    finally:
        second.stop()
