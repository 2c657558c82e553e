"""Concurrent requests never overspend; Redis state outlives the gateway process."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from tenancy_test_utils import FakeClock, StoreFactory, config

from gateway.tenancy import Rejection, Reservation, TenantStore, TokenCounts

LIMIT = 10.0  # cost units; each request holds 1.0, so at most 10 run at once


async def _request(store: TenantStore, seed: int, settled: list[float]) -> bool:
    """Reserve 1.0, yield to the others a few times, settle a random cost <= 1.0."""
    rng = random.Random(seed)
    decision = await store.reserve("acme", 1.0)
    if isinstance(decision, Rejection):
        return False
    assert isinstance(decision, Reservation)
    usage = await store.usage("acme")
    assert usage.spent + usage.reserved <= LIMIT + 1e-9  # a consistent snapshot, never over
    for _ in range(rng.randint(0, 3)):
        await asyncio.sleep(0)
    cost = rng.randint(20, 100) / 100
    result = await store.settle(decision, cost, TokenCounts(slm_completion=1))
    assert result.status == "settled"
    settled.append(result.charged)
    return True


async def _check_final(store: TenantStore, settled: list[float], outcomes: list[bool]) -> None:
    usage = await store.usage("acme")
    assert usage.spent <= LIMIT
    assert usage.spent == pytest.approx(sum(settled), abs=1e-9)
    assert (usage.reserved, usage.active_requests) == (0.0, 0)
    assert usage.requests.granted == usage.requests.completed == sum(outcomes) == len(settled)
    assert usage.requests.granted + usage.requests.rejected == len(outcomes) == 50
    assert usage.tokens.slm_completion == len(settled)
    assert sum(outcomes) >= 10  # the budget was actually used up, not refused early


async def test_50_concurrent_requests_never_overspend(stores: StoreFactory) -> None:
    async with stores() as store:
        await store.create_tenant("acme", config(LIMIT))
        settled: list[float] = []
        outcomes = await asyncio.gather(*(_request(store, i, settled) for i in range(50)))
        await _check_final(store, settled, list(outcomes))


async def test_two_clients_never_overspend(stores: StoreFactory) -> None:
    """Redis: two stores with their own connection pools, like two replicas.
    Embedded: one store driven from two threads, each with its own event loop."""
    settled: list[float] = []
    async with stores() as admin:
        await admin.create_tenant("acme", config(LIMIT))
        if stores.kind == "redis":
            async with stores() as one, stores() as two:
                outcomes = await asyncio.gather(
                    *(_request(one if i % 2 else two, i, settled) for i in range(50))
                )
        else:
            results: list[list[bool]] = []

            async def half(offset: int) -> list[bool]:
                return list(
                    await asyncio.gather(
                        *(_request(admin, i, settled) for i in range(offset, 50, 2))
                    )
                )

            threads = [
                threading.Thread(target=lambda o=o: results.append(asyncio.run(half(o))))
                for o in (0, 1)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            outcomes = results[0] + results[1]
        await _check_final(admin, settled, list(outcomes))


async def test_redis_state_survives_a_gateway_restart(redis_url: str, clock: FakeClock) -> None:
    """Close every connection, open a new store on the same Redis: nothing is lost.
    (The embedded store lives and dies with its process, by design.)"""
    stores = StoreFactory("redis", redis_url, clock)
    async with stores() as before:
        await before.create_tenant("acme", config(5.0, policy="reject"))
        key = await before.issue_key("acme")
        revoked = await before.issue_key("acme")
        await before.revoke_key("acme", revoked.key_id)
        await before.settle(await before.reserve("acme", 2.0), 1.5)  # type: ignore[arg-type]
        running = await before.reserve("acme", 1.0)
        assert isinstance(running, Reservation)
    async with stores() as after:
        tenant = await after.authenticate(key.plaintext)
        assert tenant is not None and tenant.config.policy == "reject"
        assert await after.authenticate(revoked.plaintext) is None
        usage = await after.usage("acme")
        assert (usage.spent, usage.reserved, usage.requests.granted) == (1.5, 1.0, 2)
        assert (await after.settle(running, 0.5)).status == "settled"
        assert (await after.usage("acme")).spent == pytest.approx(2.0)
        assert await after.list_tenants() == ["acme"]
