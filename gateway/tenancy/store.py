"""The tenant store interface, its factory, and the two calls a request makes.

Request flow (the HTTP layer):

    tenant = await store.authenticate(api_key)            # None -> 401
    decision = await reserve_for_request(store, tenant, prompt_tokens, max_tokens)
    match decision:
        case Rejection(): 429 with decision.code / message / should_retry
        case Reservation(): serve (SLM-only unless decision.llm_allowed) ...
    ... finally: await settle_tokens(store, decision, tenant.config.prices, tokens, outcome)

``reserve`` takes two worst cases. If the full (LLM) worst case fits in
``limit - spent - reserved`` it is held and the reservation has
``llm_allowed=True``. Otherwise, under policy ``degrade`` and if the SLM-only
worst case fits, that smaller amount is held and the reservation has
``llm_allowed=False, degraded=True``. Otherwise (policy ``reject``, or not even
the SLM fits) it returns ``Rejection("insufficient_quota")``. A tenant at its
``max_concurrent`` gets ``Rejection("rate_limit_exceeded", should_retry=True)``.
"""

from __future__ import annotations

import time
from typing import Protocol

from gateway.tenancy.config import TenantConfig
from gateway.tenancy.cost import TokenCounts, cost_of, worst_case_cost
from gateway.tenancy.ratelimit import RateResult
from gateway.tenancy.records import (
    Clock,
    Decision,
    Hold,
    IssuedKey,
    KeyInfo,
    Outcome,
    Reservation,
    SettleResult,
    Tenant,
    Usage,
)


class TenantStore(Protocol):
    """Tenants, keys and budgets. Both implementations have identical semantics."""

    async def create_tenant(self, tenant_id: str, config: TenantConfig) -> Tenant:
        """Raises ``TenantExists`` if taken, ``ValueError`` for a bad id."""
        ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def update_tenant(self, tenant_id: str, config: TenantConfig) -> Tenant:
        """Replace budget/prices/policy/ceilings; takes effect on the next reserve.
        Changing the period starts counting in the new window."""
        ...

    async def list_tenants(self) -> list[str]: ...

    async def issue_key(self, tenant_id: str) -> IssuedKey:
        """A new key; its plaintext is returned here once and never stored."""
        ...

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        """The key fails ``authenticate`` at once; False if the tenant has no such key."""
        ...

    async def list_keys(self, tenant_id: str) -> list[KeyInfo]: ...

    async def authenticate(self, plaintext_key: str) -> Tenant | None: ...

    async def reserve(
        self,
        tenant_id: str,
        worst_case_cost: float,
        slm_only_cost: float | None = None,
        *,
        ttl_s: float | None = None,
    ) -> Decision:
        """Atomically hold the worst case (cost units); see the module docstring."""
        ...

    async def settle(
        self,
        reservation: Reservation,
        actual_cost: float,
        tokens: TokenCounts | None = None,
        outcome: Outcome = "completed",
    ) -> SettleResult:
        """Release the hold and charge ``actual_cost`` (cost units). Idempotent:
        a second settle charges nothing; settling after expiry still charges."""
        ...

    async def renew(self, reservation: Reservation, ttl_s: float) -> bool:
        """Extend a live hold to expire ``ttl_s`` from now (its request still runs);
        False when it was settled, expired or released already."""
        ...

    async def list_holds(self, tenant_id: str) -> list[Hold]:
        """The tenant's live holds, soonest expiry first."""
        ...

    async def release_holds(self, tenant_id: str, ids: list[str] | None = None) -> int:
        """Expire these holds (all when None) now, e.g. those of a replica killed with
        ``kill -9``; a late settle still charges once. The count released."""
        ...

    async def expire_reservations(self, tenant_id: str) -> int:
        """Return expired holds to the budget now; the count swept. (Every other
        call sweeps its tenant too, so this is only for a periodic janitor.)"""
        ...

    async def take_rate(
        self, tenant_id: str, rpm: int | None, tpm: int | None, tokens: int
    ) -> RateResult:
        """Count one request of ``tokens`` in this minute unless a limit would pass
        (``gateway.tenancy.ratelimit``); atomic across gateways sharing the store."""
        ...

    async def usage(self, tenant_id: str) -> Usage:
        """The current period's numbers for one tenant (only that tenant's)."""
        ...

    async def close(self) -> None: ...


async def open_store(
    url: str | None = None,
    *,
    reservation_ttl_s: float = 600.0,
    namespace: str = "citer",
    clock: Clock = time.time,
) -> TenantStore:
    """``None`` or ``memory://``: embedded in-process store; ``redis://``/``rediss://``:
    Redis, shared by replicas (connects and pings, so a bad URL fails here)."""
    if not reservation_ttl_s > 0:
        raise ValueError(f"reservation_ttl_s: must be > 0 seconds, got {reservation_ttl_s!r}")
    if url is None or url.startswith("memory://"):
        from gateway.tenancy.memory import EmbeddedStore

        return EmbeddedStore(reservation_ttl_s=reservation_ttl_s, clock=clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from gateway.tenancy.redis_store import RedisStore

        return await RedisStore.connect(
            url, reservation_ttl_s=reservation_ttl_s, namespace=namespace, clock=clock
        )
    raise ValueError(f"store_url: expected redis://, rediss://, unix:// or memory://, got {url!r}")


async def reserve_for_request(
    store: TenantStore, tenant: Tenant, prompt_tokens: int, max_tokens: int, llm: bool = True
) -> Decision:
    """Reserve with both worst cases computed from the tenant's prices; ``llm`` False
    (the request asked for the SLM alone) holds the SLM-only worst case."""
    prices = tenant.config.prices
    slm = worst_case_cost(prices, prompt_tokens, max_tokens, llm_allowed=False)
    if not llm or tenant.config.max_llm_share == 0.0:  # the LLM is never used
        return await store.reserve(tenant.id, slm, None)
    full = worst_case_cost(prices, prompt_tokens, max_tokens, llm_allowed=True)
    return await store.reserve(tenant.id, full, slm)


async def settle_tokens(
    store: TenantStore,
    reservation: Reservation,
    tenant: Tenant,
    tokens: TokenCounts,
    outcome: Outcome = "completed",
) -> SettleResult:
    """Settle at the tenant's prices for the tokens actually processed."""
    return await store.settle(reservation, cost_of(tenant.config.prices, tokens), tokens, outcome)
