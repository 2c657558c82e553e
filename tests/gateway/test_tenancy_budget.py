"""Reserve/settle decisions, periods, expiry and isolation, against both stores."""

from __future__ import annotations

import dataclasses

import pytest
from tenancy_test_utils import StoreFactory, config

from gateway.tenancy import (
    Prices,
    Rejection,
    Reservation,
    TokenCounts,
    reserve_for_request,
    settle_tokens,
    worst_case_cost,
)


async def _granted(decision: Reservation | Rejection) -> Reservation:
    assert isinstance(decision, Reservation), decision
    return decision


async def test_degrade_serves_slm_only_then_rejects(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(1.0, policy="degrade"))
        full = await _granted(await store.reserve("acme", 0.8, 0.2))
        assert full.llm_allowed and not full.degraded and full.amount == pytest.approx(0.8)
        slm = await _granted(await store.reserve("acme", 0.8, 0.2))  # 0.2 left: SLM fits
        assert (slm.llm_allowed, slm.degraded, slm.max_llm_share) == (False, True, 0.0)
        assert slm.amount == pytest.approx(0.2)
        refused = await store.reserve("acme", 0.8, 0.2)  # nothing left
        assert isinstance(refused, Rejection) and refused.code == "insufficient_quota"
        usage = await store.usage("acme")
        assert usage.reserved == pytest.approx(1.0) and usage.remaining == 0.0
        counts = usage.requests
        assert (counts.granted, counts.degraded, counts.rejected) == (2, 1, 1)


async def test_reject_policy_names_budget_and_reset(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(1.0, policy="reject"))
        await _granted(await store.reserve("acme", 0.5, 0.1))
        refused = await store.reserve("acme", 0.8, 0.2)  # the SLM would fit, policy says no
        assert isinstance(refused, Rejection)
        assert (refused.code, refused.http_status, refused.should_retry) == (
            "insufficient_quota",
            429,
            False,
        )
        next_midnight = (int(stores.clock.now) // 86400 + 1) * 86400
        assert refused.resets_at == next_midnight
        assert "'acme'" in refused.message and "'1d'" in refused.message
        assert "2027-01-16T00:00:00Z" in refused.message and "reject" in refused.message


async def test_share_ceiling_is_surfaced(stores: StoreFactory) -> None:
    prices = Prices(slm_prompt=0.1, slm_completion=0.2, llm_prompt=1.0, llm_completion=3.0)
    async with stores() as store:
        tenant = await store.create_tenant("acme", config(100.0, prices=prices, max_llm_share=0.25))
        res = await _granted(await reserve_for_request(store, tenant, 1000, 200))
        assert res.llm_allowed and res.max_llm_share == 0.25
        assert res.amount == pytest.approx(worst_case_cost(prices, 1000, 200, True))
        tenant = await store.update_tenant("acme", tenant.config.with_changes(max_llm_share=0))
        slm_only = await _granted(await reserve_for_request(store, tenant, 1000, 200))
        assert (slm_only.llm_allowed, slm_only.degraded) == (False, False)
        assert slm_only.amount == pytest.approx(worst_case_cost(prices, 1000, 200, False))


async def test_settle_charges_actual_tokens(stores: StoreFactory) -> None:
    prices = Prices(slm_prompt=1.0, slm_completion=2.0, llm_prompt=10.0, llm_completion=30.0)
    async with stores() as store:
        tenant = await store.create_tenant("acme", config(100.0, prices=prices))
        res = await _granted(await reserve_for_request(store, tenant, 100, 50))
        tokens = TokenCounts(slm_prompt=100, slm_completion=40, llm_prompt=120, llm_completion=10)
        result = await settle_tokens(store, res, tenant, tokens, outcome="aborted")
        assert result.status == "settled" and result.overrun == 0.0
        assert result.charged == pytest.approx(0.1 + 0.08 + 1.2 + 0.3)
        usage = await store.usage("acme")
        assert usage.spent == pytest.approx(result.charged) and usage.reserved == 0.0
        assert usage.tokens == tokens and usage.tokens.llm_share == pytest.approx(0.2)
        assert (usage.requests.aborted, usage.requests.completed) == (1, 0)
        with pytest.raises(ValueError, match="outcome"):
            await store.settle(res, 0.0, outcome="exploded")  # type: ignore[arg-type]


async def test_overrun_is_charged_and_reported(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(10.0))
        res = await _granted(await store.reserve("acme", 1.0))
        result = await store.settle(res, 1.5)
        assert result.charged == pytest.approx(1.5) and result.overrun == pytest.approx(0.5)


async def test_concurrency_cap(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(100.0, max_concurrent=2))
        first = await _granted(await store.reserve("acme", 1.0))
        await _granted(await store.reserve("acme", 1.0))
        busy = await store.reserve("acme", 1.0)
        assert isinstance(busy, Rejection)
        assert busy.code == "rate_limit_exceeded" and busy.should_retry
        assert "max_concurrent=2" in busy.message and busy.resets_at is None
        await store.settle(first, 0.5)
        await _granted(await store.reserve("acme", 1.0))


@pytest.mark.parametrize(("period", "seconds"), [("1h", 3600), ("1d", 86400), ("30d", 2592000)])
async def test_period_reset(stores: StoreFactory, period: str, seconds: int) -> None:
    clock = stores.clock
    async with stores() as store:
        await store.create_tenant("acme", config(1.0, budget={"limit": 1.0, "period": period}))
        spent = await _granted(await store.reserve("acme", 0.6))
        await store.settle(spent, 0.6)
        # A request running across the boundary (its TTL long enough to outlive the window).
        held = await _granted(await store.reserve("acme", 0.4, ttl_s=2 * seconds))
        refused = await store.reserve("acme", 0.1)
        assert isinstance(refused, Rejection)
        reset = (int(clock.now) // seconds + 1) * seconds
        assert refused.resets_at == reset
        clock.now = reset - 0.001
        assert isinstance(await store.reserve("acme", 0.1), Rejection)
        clock.now = reset
        usage = await store.usage("acme")
        assert (usage.period_start, usage.resets_at) == (reset, reset + seconds)
        assert usage.spent == 0.0 and usage.reserved == pytest.approx(0.4)  # holds carry over
        assert usage.requests.rejected == 0  # counters are per period
        await _granted(await store.reserve("acme", 0.6))
        await store.settle(held, 0.3)  # charged to the window it ends in
        assert (await store.usage("acme")).spent == pytest.approx(0.3)


async def test_period_none_never_resets(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(1.0, budget={"limit": 1.0, "period": "none"}))
        await store.settle(await _granted(await store.reserve("acme", 1.0)), 1.0)
        stores.clock.advance(400 * 86400)
        refused = await store.reserve("acme", 0.1)
        assert isinstance(refused, Rejection) and refused.resets_at is None
        assert "does not reset" in refused.message
        assert (await store.usage("acme")).resets_at is None


async def test_expired_reservation_returns_budget_and_settles_once(stores: StoreFactory) -> None:
    clock = stores.clock
    async with stores(ttl_s=60) as store:
        await store.create_tenant("acme", config(1.0))
        crashed = await _granted(await store.reserve("acme", 0.8))
        assert crashed.expires_at == clock.now + 60
        assert isinstance(await store.reserve("acme", 0.5), Rejection)
        clock.advance(59.9)
        assert await store.expire_reservations("acme") == 0
        clock.advance(0.1)
        assert await store.expire_reservations("acme") == 1
        usage = await store.usage("acme")
        assert (usage.reserved, usage.active_requests) == (0.0, 0)
        live = await _granted(await store.reserve("acme", 0.5, ttl_s=5))  # per-call TTL
        assert live.expires_at == clock.now + 5
        late = await store.settle(crashed, 0.3)  # the tokens were produced: still charged
        assert (late.status, late.charged) == ("late", pytest.approx(0.3))
        again = await store.settle(crashed, 0.3)
        assert (again.status, again.charged) == ("duplicate", 0.0)
        assert (await store.settle(live, 0.2)).status == "settled"
        assert (await store.settle(live, 0.2)).status == "duplicate"
        usage = await store.usage("acme")
        assert usage.spent == pytest.approx(0.5) and usage.reserved == 0.0
        assert usage.requests.completed == 2


async def test_unknown_and_forgotten_reservations_charge_nothing(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(10.0))
        res = await _granted(await store.reserve("acme", 1.0))
        forged = dataclasses.replace(res, id="res_0000")
        assert (await store.settle(forged, 5.0)).status == "unknown"
        assert (
            await store.settle(dataclasses.replace(res, tenant_id="ghost"), 5.0)
        ).status == "unknown"
        await store.settle(res, 1.0)
        stores.clock.advance(86400 + 1)  # tombstones are kept a day
        assert (await store.settle(res, 1.0)).status == "unknown"
        assert (await store.usage("acme")).spent == 0.0  # a new day, nothing re-charged


async def test_tenants_are_isolated(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("a", config(10.0, max_concurrent=1))
        await store.create_tenant("b", config(5.0, budget={"limit": 5.0, "period": "1h"}))
        res = await _granted(await store.reserve("a", 4.0))
        await _granted(await store.reserve("b", 1.0))  # a's concurrency cap is a's alone
        await store.settle(res, 3.0, TokenCounts(slm_prompt=7, llm_completion=3))
        wrong = await store.settle(dataclasses.replace(res, tenant_id="b"), 3.0)
        assert wrong.status == "unknown"
        a, b = await store.usage("a"), await store.usage("b")
        assert (a.tenant_id, a.spent, a.limit, a.tokens.slm_prompt) == ("a", 3.0, 10.0, 7)
        assert (b.tenant_id, b.spent, b.reserved, b.limit, b.period) == ("b", 0.0, 1.0, 5.0, "1h")
        assert b.tokens == TokenCounts() and b.requests.completed == 0
        assert b.requests.granted == 1 and a.requests.granted == 1


async def test_update_takes_effect_on_next_reserve(stores: StoreFactory) -> None:
    async with stores() as store, stores() as replica:
        tenant = await store.create_tenant("acme", config(1.0))
        assert isinstance(await replica.reserve("acme", 2.0), Rejection)
        await store.update_tenant("acme", tenant.config.with_changes(budget={"limit": 3.0}))
        await _granted(await replica.reserve("acme", 2.0))
        assert (await replica.usage("acme")).limit == 3.0


async def test_bad_costs_are_refused(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(10.0))
        with pytest.raises(ValueError, match="worst_case_cost"):
            await store.reserve("acme", -1.0)
        with pytest.raises(ValueError, match="slm_only_cost"):
            await store.reserve("acme", 1.0, float("nan"))
        res = await _granted(await store.reserve("acme", 1.0))
        with pytest.raises(ValueError, match="actual_cost"):
            await store.settle(res, -0.5)
        assert (await store.usage("acme")).remaining == pytest.approx(9.0)
