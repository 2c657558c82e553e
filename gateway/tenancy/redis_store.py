"""Redis store: tenant state in Redis, shared by gateway replicas, kept across restarts.

Budget operations (reserve, settle, sweep) are single Lua scripts on one
tenant's keys, so they are atomic across replicas and connections (see
``redis_lua.py`` for the key layout). Admin operations are plain commands.
Targets one Redis primary (not Redis Cluster: the key index spans slots).
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from gateway.tenancy import redis_lua
from gateway.tenancy.config import PERIOD_SECONDS, TenantConfig
from gateway.tenancy.cost import TokenCounts, from_micros, to_micros
from gateway.tenancy.keys import hash_key, new_key
from gateway.tenancy.ledger import TOMBSTONE_S, Grant, decision_from, usage_from
from gateway.tenancy.ratelimit import RATE, WINDOW_S, RateResult, window
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


class RedisStore:
    def __init__(
        self, client: aioredis.Redis, *, reservation_ttl_s: float, namespace: str, clock: Clock
    ) -> None:
        self._r = client
        self._ttl = reservation_ttl_s
        self._ns = namespace
        self._clock = clock
        self._reserve = client.register_script(redis_lua.RESERVE)
        self._settle = client.register_script(redis_lua.SETTLE)
        self._sweep = client.register_script(redis_lua.SWEEP)
        self._renew = client.register_script(redis_lua.RENEW)
        self._release = client.register_script(redis_lua.RELEASE)
        self._rate = client.register_script(RATE)
        self._put = client.register_script(redis_lua.PUT_TENANT)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        reservation_ttl_s: float = 600.0,
        namespace: str = "citer",
        clock: Clock = time.time,
    ) -> RedisStore:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            await client.ping()
        except aioredis.RedisError as exc:
            await client.aclose()
            raise ConnectionError(f"tenancy store: cannot reach Redis ({exc})") from exc
        return cls(client, reservation_ttl_s=reservation_ttl_s, namespace=namespace, clock=clock)

    # Keys: one hash tag per tenant keeps a tenant's budget keys in one slot.
    def _tenant_keys(self, tenant_id: str) -> list[str]:
        tag = f"{self._ns}:{{{tenant_id}}}"
        return [f"{tag}:{part}" for part in ("cfg", "use", "holds", "exp", "closed")]

    def _keyring(self, tenant_id: str) -> str:
        return f"{self._ns}:{{{tenant_id}}}:keys"  # key id -> JSON {sha256, created_at, ...}

    def _key_index(self, digest: str) -> str:
        return f"{self._ns}:key:{digest}"  # sha256 -> "tenant_id key_id"

    async def _put_tenant(self, mode: str, tenant_id: str, config: TenantConfig) -> int:
        budget = config.budget
        fields = {
            "config": config.model_dump_json(),
            "limit": str(to_micros(budget.limit)),
            "period_s": PERIOD_SECONDS[budget.period],
            "policy": config.policy,
            "max_concurrent": config.max_concurrent or 0,
        }
        args = [mode, tenant_id, repr(self._clock())]
        args += [item for pair in fields.items() for item in pair]
        keys = [self._tenant_keys(tenant_id)[0], f"{self._ns}:tenants"]
        return int(await self._put(keys=keys, args=args))

    async def create_tenant(self, tenant_id: str, config: TenantConfig) -> Tenant:
        check_tenant_id(tenant_id)
        if await self._put_tenant("create", tenant_id, config) == 0:
            raise TenantExists(f"tenant {tenant_id!r} already exists")
        return await self._require(tenant_id)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        raw, created = await self._r.hmget(self._tenant_keys(tenant_id)[0], "config", "created_at")
        return _tenant(tenant_id, raw, created) if raw else None

    async def _require(self, tenant_id: str) -> Tenant:
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise TenantNotFound(tenant_id)
        return tenant

    async def update_tenant(self, tenant_id: str, config: TenantConfig) -> Tenant:
        if await self._put_tenant("update", tenant_id, config) == -1:
            raise TenantNotFound(tenant_id)
        return await self._require(tenant_id)

    async def list_tenants(self) -> list[str]:
        return sorted(await self._r.smembers(f"{self._ns}:tenants"))

    async def issue_key(self, tenant_id: str) -> IssuedKey:
        await self._require(tenant_id)
        key_id, plaintext, digest = new_key()
        record = {"sha256": digest, "created_at": self._clock(), "revoked_at": None}
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._key_index(digest), f"{tenant_id} {key_id}")
            pipe.hset(self._keyring(tenant_id), key_id, json.dumps(record))
            await pipe.execute()
        return IssuedKey(key_id, tenant_id, plaintext)

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        raw = await self._r.hget(self._keyring(tenant_id), key_id)
        if raw is None:
            return False
        record = json.loads(raw)
        record["revoked_at"] = record["revoked_at"] or self._clock()
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._key_index(record["sha256"]))
            pipe.hset(self._keyring(tenant_id), key_id, json.dumps(record))
            await pipe.execute()
        return True

    async def list_keys(self, tenant_id: str) -> list[KeyInfo]:
        await self._require(tenant_id)
        ring = await self._r.hgetall(self._keyring(tenant_id))
        infos = []
        for key_id, raw in ring.items():
            record = json.loads(raw)
            infos.append(KeyInfo(key_id, record["created_at"], record["revoked_at"]))
        return sorted(infos, key=lambda k: (k.created_at, k.key_id))

    async def authenticate(self, plaintext_key: str) -> Tenant | None:
        owner = await self._r.get(self._key_index(hash_key(plaintext_key)))
        return await self.get_tenant(owner.split()[0]) if owner else None

    async def _run(self, script: Any, tenant_id: str, *args: str) -> tuple[str, str, Usage, Tenant]:
        now = repr(self._clock())
        reply = await script(keys=self._tenant_keys(tenant_id), args=[now, TOMBSTONE_S, *args])
        if reply[0] == "missing":
            raise TenantNotFound(tenant_id)
        status, detail, flat, active, raw, created, first = reply
        tenant = _tenant(tenant_id, raw, created)
        counters = {k: int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
        start, reserved = counters.pop("period_start"), counters.pop("reserved", 0)
        expiry = float(first[1]) if first else None
        usage = usage_from(tenant, start, counters, reserved, int(active), expiry)
        return status, detail, usage, tenant

    async def reserve(
        self,
        tenant_id: str,
        worst_case_cost: float,
        slm_only_cost: float | None = None,
        *,
        ttl_s: float | None = None,
    ) -> Decision:
        llm, slm, rid = reserve_request(worst_case_cost, slm_only_cost)
        expires = self._clock() + (self._ttl if ttl_s is None else ttl_s)
        grant, _, usage, tenant = await self._run(
            self._reserve,
            tenant_id,
            rid,
            str(llm),
            "" if slm is None else str(slm),
            repr(expires),
        )
        return decision_from(_grant(grant), rid, tenant, llm, slm, expires, usage)

    async def settle(
        self,
        reservation: Reservation,
        actual_cost: float,
        tokens: TokenCounts | None = None,
        outcome: Outcome = "completed",
    ) -> SettleResult:
        check_outcome(outcome)
        actual = to_micros(check_cost("actual_cost", actual_cost))
        t = tokens or TokenCounts()
        counts = (t.slm_prompt, t.slm_completion, t.llm_prompt, t.llm_completion)
        try:
            status, held, _, _ = await self._run(
                self._settle,
                reservation.tenant_id,
                reservation.id,
                str(actual),
                *map(str, counts),
                outcome,
            )
        except TenantNotFound:
            return SettleResult("unknown", 0.0)
        if status in ("duplicate", "unknown"):
            return SettleResult(status, 0.0)
        overrun = max(0, actual - int(held)) if status == "settled" else 0
        return SettleResult(status, from_micros(actual), from_micros(overrun))  # type: ignore[arg-type]

    async def renew(self, reservation: Reservation, ttl_s: float) -> bool:
        expires = repr(self._clock() + ttl_s)
        try:
            _, renewed, _, _ = await self._run(
                self._renew, reservation.tenant_id, reservation.id, expires
            )
        except TenantNotFound:
            return False
        return renewed == "1"

    async def list_holds(self, tenant_id: str) -> list[Hold]:
        await self._run(self._sweep, tenant_id)  # drop expired holds first
        _, holds, exp = self._tenant_keys(tenant_id)[1:4]
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hgetall(holds)
            pipe.zrange(exp, 0, -1, withscores=True)
            amounts, expiries = await pipe.execute()
        return [
            Hold(rid, from_micros(int(amounts[rid])), float(when))
            for rid, when in expiries
            if rid in amounts
        ]

    async def release_holds(self, tenant_id: str, ids: list[str] | None = None) -> int:
        if ids is not None and not ids:
            return 0
        _, n, _, _ = await self._run(self._release, tenant_id, *(ids or []))
        return int(n)

    async def expire_reservations(self, tenant_id: str) -> int:
        _, swept, _, _ = await self._run(self._sweep, tenant_id)
        return int(swept)

    async def take_rate(
        self, tenant_id: str, rpm: int | None, tpm: int | None, tokens: int
    ) -> RateResult:
        w, left = window(self._clock())
        base = f"{self._ns}:{{{tenant_id}}}:rate:{w}"  # one hash slot per tenant
        ok, r, t = await self._rate(
            keys=[f"{base}:requests", f"{base}:tokens"],
            args=[rpm or 0, tpm or 0, tokens, WINDOW_S + 5],
        )
        return RateResult(bool(ok), int(r), int(t), left)

    async def usage(self, tenant_id: str) -> Usage:
        return (await self._run(self._sweep, tenant_id))[2]

    async def close(self) -> None:
        await self._r.aclose()


def _tenant(tenant_id: str, raw_config: str, created_at: str | None) -> Tenant:
    config = TenantConfig.model_validate_json(raw_config)
    return Tenant(tenant_id, config, float(created_at or 0.0))


def _grant(status: str) -> Grant:
    if status not in ("llm", "slm", "quota", "busy"):
        raise RuntimeError(f"unexpected reserve status from Redis: {status!r}")
    return status  # type: ignore[return-value]
