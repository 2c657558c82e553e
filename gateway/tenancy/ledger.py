"""One tenant's budget ledger: the reserve/settle/expire rules both stores share.

The embedded store runs ``Account`` under a lock; the Redis store runs the same
rules as Lua scripts (``redis_lua.py``) and builds its answers with the helpers
here, so the two stores agree by construction on everything but the storage.

Invariants (all amounts integer micro-units):
- ``reserved == sum(hold amounts)``; a hold whose ``expires_at <= now`` is swept
  (returned to the budget) before any operation reads the numbers.
- A grant needs ``amount <= limit - spent - reserved``; since a hold is never
  smaller than the cost it settles to, ``spent <= limit`` whenever every request
  settles within its hold (late settles after expiry are still charged).
- Every reservation id is settled at most once: settled and expired ids are
  remembered for ``TOMBSTONE_S``; an id seen nowhere is ``unknown`` and ignored.
- Counters other than ``reserved`` reset when a new fixed window starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.tenancy.config import PERIOD_SECONDS
from gateway.tenancy.cost import TokenCounts, from_micros, to_micros, window
from gateway.tenancy.records import (
    Decision,
    RequestCounts,
    Reservation,
    SettleStatus,
    Tenant,
    Usage,
    concurrency_rejection,
    quota_rejection,
)

TOKEN_FIELDS = ("slm_prompt", "slm_completion", "llm_prompt", "llm_completion")
REQUEST_FIELDS = ("granted", "degraded", "rejected", "completed", "aborted", "failed")
COUNTERS = ("spent", *TOKEN_FIELDS, *REQUEST_FIELDS)  # per-period; "spent" in micro-units
TOMBSTONE_S = 86_400  # how long settled/expired reservation ids are remembered
Grant = Literal["llm", "slm", "quota", "busy"]  # reserve outcomes, same strings in Lua


@dataclass
class Account:
    tenant: Tenant
    period_start: int = -1
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    reserved: int = 0
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (micros, expires)
    # id -> ("s"ettled | "e"xpired, when); insertion order is time order.
    closed: dict[str, tuple[str, float]] = field(default_factory=dict)

    def refresh(self, now: float) -> None:
        """Sweep expired holds and old tombstones, then roll the window if it moved."""
        for rid in [r for r, (_, expires) in self.holds.items() if expires <= now]:
            self.reserved -= self.holds.pop(rid)[0]
            self.closed[rid] = ("e", now)
        cutoff = now - TOMBSTONE_S
        while self.closed:
            rid, (_, when) = next(iter(self.closed.items()))
            if when > cutoff:
                break
            del self.closed[rid]
        start, _ = window(self.tenant.config.budget.period, now)
        if start != self.period_start:
            self.period_start = start
            self.counters = dict.fromkeys(COUNTERS, 0)

    def reserve(self, rid: str, llm: int, slm: int | None, expires: float, now: float) -> Grant:
        self.refresh(now)
        cfg = self.tenant.config
        if cfg.max_concurrent is not None and len(self.holds) >= cfg.max_concurrent:
            self.counters["rejected"] += 1
            return "busy"
        room = to_micros(cfg.budget.limit) - self.counters["spent"] - self.reserved
        if llm <= room:
            grant: Grant = "llm"
        elif cfg.policy == "degrade" and slm is not None and slm <= room:
            grant = "slm"
            self.counters["degraded"] += 1
        else:
            self.counters["rejected"] += 1
            return "quota"
        amount = llm if grant == "llm" else slm
        assert amount is not None
        self.holds[rid] = (amount, expires)
        self.reserved += amount
        self.counters["granted"] += 1
        return grant

    def settle(
        self, rid: str, actual: int, tokens: TokenCounts, outcome: str, now: float
    ) -> tuple[SettleStatus, int]:
        """(status, micro-units the hold covered: 0 unless ``settled``)."""
        self.refresh(now)
        held = 0
        if rid in self.holds:
            held = self.holds.pop(rid)[0]
            self.reserved -= held
            status: SettleStatus = "settled"
        elif self.closed.get(rid, ("",))[0] == "e":
            status = "late"
        else:
            return ("duplicate" if rid in self.closed else "unknown"), 0
        self.closed.pop(rid, None)
        self.closed[rid] = ("s", now)
        self.counters["spent"] += actual
        for name in TOKEN_FIELDS:
            self.counters[name] += getattr(tokens, name)
        self.counters[outcome] += 1
        return status, held

    def renew(self, rid: str, expires: float, now: float) -> bool:
        """Move a live hold's expiry to ``expires``; False if it is gone."""
        self.refresh(now)
        if rid not in self.holds:
            return False
        self.holds[rid] = (self.holds[rid][0], expires)
        return True

    def release(self, ids: list[str] | None, now: float) -> int:
        """Expire holds now (all when ``ids`` is None): their budget returns, and a late
        settle still charges once. The count released."""
        self.refresh(now)
        for rid in list(self.holds) if ids is None else [i for i in ids if i in self.holds]:
            self.holds[rid] = (self.holds[rid][0], now)
        before = len(self.holds)
        self.refresh(now)
        return before - len(self.holds)

    def usage(self, now: float) -> Usage:
        self.refresh(now)
        first = min((expires for _, expires in self.holds.values()), default=None)
        return usage_from(
            self.tenant, self.period_start, self.counters, self.reserved, len(self.holds), first
        )


def usage_from(
    tenant: Tenant,
    period_start: int,
    counters: dict[str, int],
    reserved: int,
    active: int,
    next_hold_expiry: float | None = None,
) -> Usage:
    budget = tenant.config.budget
    seconds = PERIOD_SECONDS[budget.period]
    spent = counters.get("spent", 0)
    return Usage(
        tenant_id=tenant.id,
        period=budget.period,
        period_start=period_start,
        resets_at=period_start + seconds if seconds else None,
        limit=budget.limit,
        spent=from_micros(spent),
        reserved=from_micros(reserved),
        remaining=from_micros(max(0, to_micros(budget.limit) - spent - reserved)),
        active_requests=active,
        tokens=TokenCounts(**{f: counters.get(f, 0) for f in TOKEN_FIELDS}),
        requests=RequestCounts(**{f: counters.get(f, 0) for f in REQUEST_FIELDS}),
        next_hold_expiry=next_hold_expiry,
    )


def decision_from(
    grant: Grant,
    rid: str,
    tenant: Tenant,
    llm: int,
    slm: int | None,
    expires: float,
    usage: Usage,
) -> Decision:
    """Turn a ledger outcome into the record the HTTP layer sees."""
    cfg = tenant.config
    if grant == "busy":
        assert cfg.max_concurrent is not None
        return concurrency_rejection(usage, cfg.max_concurrent)
    if grant == "quota":
        slm_units = None if slm is None else from_micros(slm)
        return quota_rejection(usage, from_micros(llm), slm_units, cfg.policy)
    llm_ok = grant == "llm" and cfg.max_llm_share != 0.0
    return Reservation(
        id=rid,
        tenant_id=tenant.id,
        amount=from_micros(llm if grant == "llm" else slm or 0),
        llm_allowed=llm_ok,
        degraded=grant == "slm",
        max_llm_share=cfg.max_llm_share if llm_ok else 0.0,
        expires_at=expires,
    )
