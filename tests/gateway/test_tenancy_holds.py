"""Budget holds: renewal while a request runs, listing and releasing (a killed
replica's leftovers), and the 429 that says when holds expire; both stores."""

from __future__ import annotations

import pytest
from tenancy_test_utils import StoreFactory, config

from gateway.tenancy import Rejection, Reservation


async def test_a_renewed_hold_outlives_its_ttl_and_a_late_settle_charges_once(
    stores: StoreFactory,
) -> None:
    async with stores(ttl_s=10.0) as store:
        await store.create_tenant("acme", config(10.0))
        res = await store.reserve("acme", 4.0)
        assert isinstance(res, Reservation)
        stores.clock.advance(8)
        assert await store.renew(res, 10.0)  # now expires at t0 + 18
        stores.clock.advance(9)  # t0 + 17: past the first TTL, still held
        assert (await store.usage("acme")).reserved == pytest.approx(4.0)
        stores.clock.advance(2)  # t0 + 19: expired without renewal
        assert (await store.usage("acme")).reserved == 0.0
        assert not await store.renew(res, 10.0)  # gone: nothing to renew
        late = await store.settle(res, 3.0)
        assert (late.status, late.charged) == ("late", pytest.approx(3.0))
        again = await store.settle(res, 3.0)
        assert (again.status, again.charged) == ("duplicate", 0.0)
        assert (await store.usage("acme")).spent == pytest.approx(3.0)


async def test_admin_lists_and_releases_holds(stores: StoreFactory) -> None:
    async with stores(ttl_s=600.0) as store:
        await store.create_tenant("acme", config(5.0))
        holds = [await store.reserve("acme", 2.0) for _ in range(2)]
        assert all(isinstance(h, Reservation) for h in holds)
        stores.clock.advance(1)
        third = await store.reserve("acme", 2.0)
        assert isinstance(third, Rejection)  # 4 of 5 held: blocked
        usage = await store.usage("acme")
        assert usage.next_hold_expiry == pytest.approx(holds[0].expires_at)
        assert "live holds reserve 4" in third.message and "/holds" in third.message
        listed = await store.list_holds("acme")
        got = sorted((h.id, h.amount, round(h.expires_at, 3)) for h in listed)
        assert got == sorted((h.id, 2.0, round(h.expires_at, 3)) for h in holds)
        assert await store.release_holds("acme", [holds[0].id, "nope"]) == 1
        assert [h.id for h in await store.list_holds("acme")] == [holds[1].id]
        assert await store.release_holds("acme") == 1
        usage = await store.usage("acme")
        assert (usage.reserved, usage.active_requests, usage.next_hold_expiry) == (0.0, 0, None)
        assert isinstance(await store.reserve("acme", 2.0), Reservation)  # unblocked
        late = await store.settle(holds[0], 1.5)  # its request ends after the release
        assert late.status == "late" and (await store.settle(holds[0], 1.5)).status == "duplicate"
        assert (await store.usage("acme")).spent == pytest.approx(1.5)
