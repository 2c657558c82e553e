"""Embedded store: one process, state in dicts, same semantics as the Redis store.

Thread-safe and asyncio-friendly: every method holds one ``threading.Lock`` for
a few dict operations and never awaits while holding it, so it neither blocks
the event loop noticeably nor interleaves with other threads. Nothing persists:
a restart forgets tenants, keys and usage (use Redis for that).
"""

from __future__ import annotations

import threading
import time

from gateway.tenancy.config import TenantConfig
from gateway.tenancy.cost import TokenCounts, from_micros, to_micros
from gateway.tenancy.keys import hash_key, new_key
from gateway.tenancy.ledger import Account, decision_from
from gateway.tenancy.ratelimit import RateResult, window
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
    TenantExists,
    TenantNotFound,
    Usage,
    check_cost,
    check_outcome,
    check_tenant_id,
    reserve_request,
)


class EmbeddedStore:
    def __init__(self, *, reservation_ttl_s: float = 600.0, clock: Clock = time.time) -> None:
        self._ttl = reservation_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._rates: dict[str, tuple[int, int, int]] = {}  # tenant -> (minute, requests, tokens)
        self._accounts: dict[str, Account] = {}
        self._key_owner: dict[str, tuple[str, str]] = {}  # sha256 -> (tenant id, key id)
        self._keys: dict[str, dict[str, tuple[str, KeyInfo]]] = {}  # tenant -> id -> (sha, info)

    def _account(self, tenant_id: str) -> Account:
        try:
            return self._accounts[tenant_id]
        except KeyError:
            raise TenantNotFound(tenant_id) from None

    async def create_tenant(self, tenant_id: str, config: TenantConfig) -> Tenant:
        check_tenant_id(tenant_id)
        with self._lock:
            if tenant_id in self._accounts:
                raise TenantExists(f"tenant {tenant_id!r} already exists")
            tenant = Tenant(tenant_id, config, self._clock())
            self._accounts[tenant_id] = Account(tenant)
            self._keys[tenant_id] = {}
            return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self._lock:
            account = self._accounts.get(tenant_id)
            return account.tenant if account else None

    async def update_tenant(self, tenant_id: str, config: TenantConfig) -> Tenant:
        with self._lock:
            account = self._account(tenant_id)
            account.tenant = Tenant(tenant_id, config, account.tenant.created_at)
            return account.tenant

    async def list_tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._accounts)

    async def issue_key(self, tenant_id: str) -> IssuedKey:
        key_id, plaintext, digest = new_key()
        with self._lock:
            self._account(tenant_id)
            self._key_owner[digest] = (tenant_id, key_id)
            self._keys[tenant_id][key_id] = (digest, KeyInfo(key_id, self._clock()))
        return IssuedKey(key_id, tenant_id, plaintext)

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        with self._lock:
            entry = self._keys.get(tenant_id, {}).get(key_id)
            if entry is None:
                return False
            digest, info = entry
            self._key_owner.pop(digest, None)
            if info.revoked_at is None:
                info = KeyInfo(key_id, info.created_at, self._clock())
            self._keys[tenant_id][key_id] = (digest, info)
            return True

    async def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        with self._lock:
            self._account(tenant_id)
            return sorted(
                (info for _, info in self._keys[tenant_id].values()),
                key=lambda k: (k.created_at, k.key_id),
            )

    async def take_rate(
        self, tenant_id: str, rpm: int | None, tpm: int | None, tokens: int
    ) -> RateResult:
        w, left = window(self._clock())
        with self._lock:
            at, r, t = self._rates.get(tenant_id, (w, 0, 0))
            if at != w:  # a new minute: counts start again
                r = t = 0
            if (rpm is not None and r + 1 > rpm) or (tpm is not None and t + tokens > tpm):
                return RateResult(False, r, t, left)
            self._rates[tenant_id] = (w, r + 1, t + tokens)
            return RateResult(True, r + 1, t + tokens, left)

    async def authenticate(self, plaintext_key: str) -> Tenant | None:
        digest = hash_key(plaintext_key)
        with self._lock:
            owner = self._key_owner.get(digest)
            account = self._accounts.get(owner[0]) if owner else None
            return account.tenant if account else None

    async def reserve(
        self,
        tenant_id: str,
        worst_case_cost: float,
        slm_only_cost: float | None = None,
        *,
        ttl_s: float | None = None,
    ) -> Decision:
        llm, slm, rid = reserve_request(worst_case_cost, slm_only_cost)
        with self._lock:
            account = self._account(tenant_id)
            now = self._clock()
            expires = now + (self._ttl if ttl_s is None else ttl_s)
            grant = account.reserve(rid, llm, slm, expires, now)
            usage = account.usage(now)
        return decision_from(grant, rid, account.tenant, llm, slm, expires, usage)

    async def settle(
        self,
        reservation: Reservation,
        actual_cost: float,
        tokens: TokenCounts | None = None,
        outcome: Outcome = "completed",
    ) -> SettleResult:
        check_outcome(outcome)
        actual = to_micros(check_cost("actual_cost", actual_cost))
        with self._lock:
            account = self._accounts.get(reservation.tenant_id)
            if account is None:
                return SettleResult("unknown", 0.0)
            status, held = account.settle(
                reservation.id, actual, tokens or TokenCounts(), outcome, self._clock()
            )
        charged = actual if status in ("settled", "late") else 0
        overrun = max(0, actual - held) if status == "settled" else 0
        return SettleResult(status, from_micros(charged), from_micros(overrun))

    async def renew(self, reservation: Reservation, ttl_s: float) -> bool:
        with self._lock:
            account = self._accounts.get(reservation.tenant_id)
            now = self._clock()
            return account is not None and account.renew(reservation.id, now + ttl_s, now)

    async def list_holds(self, tenant_id: str) -> list[Hold]:
        with self._lock:
            account = self._account(tenant_id)
            account.refresh(self._clock())
            holds = [Hold(r, from_micros(m), e) for r, (m, e) in account.holds.items()]
        return sorted(holds, key=lambda h: (h.expires_at, h.id))

    async def release_holds(self, tenant_id: str, ids: list[str] | None = None) -> int:
        with self._lock:
            return self._account(tenant_id).release(ids, self._clock())

    async def expire_reservations(self, tenant_id: str) -> int:
        with self._lock:
            account = self._account(tenant_id)
            before = len(account.holds)
            account.refresh(self._clock())
            return before - len(account.holds)

    async def usage(self, tenant_id: str) -> Usage:
        with self._lock:
            return self._account(tenant_id).usage(self._clock())

    async def close(self) -> None:
        """Nothing to release; state lives as long as the object."""
