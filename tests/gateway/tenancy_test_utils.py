"""Helpers shared by the tenancy tests (a module, so tests can import the types)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.tenancy import TenantConfig, TenantStore, open_store

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a fixed, unaligned start for the fake clock


def config(limit: float, **changes: object) -> TenantConfig:
    return TenantConfig.model_validate({"budget": {"limit": limit, "period": "1d"}, **changes})


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StoreFactory:
    """Opens stores of one kind that share state, like gateway replicas would:
    the same Redis namespace, or (embedded) the same store object."""

    def __init__(self, kind: str, url: str | None, clock: FakeClock) -> None:
        self.kind, self.url, self.clock = kind, url, clock
        self.namespace = "test-" + uuid.uuid4().hex[:12]
        self._embedded: TenantStore | None = None

    @asynccontextmanager
    async def __call__(self, ttl_s: float = 600.0) -> AsyncIterator[TenantStore]:
        if self.kind == "memory":
            if self._embedded is None:
                self._embedded = await open_store(None, reservation_ttl_s=ttl_s, clock=self.clock)
            yield self._embedded
            return
        store = await open_store(
            self.url, reservation_ttl_s=ttl_s, namespace=self.namespace, clock=self.clock
        )
        try:
            yield store
        finally:
            await store.close()
