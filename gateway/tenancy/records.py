"""Plain records the stores return, and the messages a refusal carries.

``reserve`` returns ``Reservation | Rejection`` (a ``Decision``): the HTTP layer
matches on the type, serves a ``Reservation`` (SLM-only when ``llm_allowed`` is
False, saying so when ``degraded``) and turns a ``Rejection`` into HTTP 429.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.tenancy.config import Period, TenantConfig
from gateway.tenancy.cost import TokenCounts, to_micros

Clock = Callable[[], float]  # epoch seconds; injectable so tests never sleep
Outcome = Literal["completed", "aborted", "failed"]
SettleStatus = Literal["settled", "late", "duplicate", "unknown"]
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class TenantNotFound(KeyError):
    """The tenant id is unknown to the store."""


class TenantExists(ValueError):
    """``create_tenant`` was called with an id that is taken."""


def check_outcome(outcome: str) -> Outcome:
    if outcome not in ("completed", "aborted", "failed"):
        raise ValueError(f"outcome: must be completed, aborted or failed, got {outcome!r}")
    return outcome  # type: ignore[return-value]


def check_cost(name: str, value: float) -> float:
    """Costs crossing the store interface: finite, >= 0, in cost units."""
    if not 0.0 <= value <= 1e12:  # also refuses NaN
        raise ValueError(f"{name}: must be within [0, 1e12] cost units, got {value!r}")
    return value


def reserve_request(
    worst_case_cost: float, slm_only_cost: float | None
) -> tuple[int, int | None, str]:
    """Checked reserve amounts in micro-units (LLM worst case, SLM-only worst case
    or None) and a fresh reservation id; every store starts ``reserve`` here."""
    llm = to_micros(check_cost("worst_case_cost", worst_case_cost))
    slm = None if slm_only_cost is None else to_micros(check_cost("slm_only_cost", slm_only_cost))
    return llm, slm, "res_" + secrets.token_hex(8)


def check_tenant_id(tenant_id: str) -> str:
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(
            f"tenant_id: must be 1-64 chars of [a-z0-9_.-] starting with [a-z0-9], "
            f"got {tenant_id!r}"
        )
    return tenant_id


@dataclass(frozen=True)
class Tenant:
    id: str
    config: TenantConfig
    created_at: float  # epoch seconds


@dataclass(frozen=True)
class IssuedKey:
    """Returned once by ``issue_key``: ``plaintext`` is never stored and cannot be read again."""

    key_id: str  # public handle for listing and revoking
    tenant_id: str
    plaintext: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class Reservation:
    """Budget held for one request until ``settle`` (or until ``expires_at``)."""

    id: str
    tenant_id: str
    amount: float  # cost units held: the worst case that was granted
    llm_allowed: bool  # False: serve with the SLM alone
    degraded: bool  # True: SLM-only because of the budget (the response must say so)
    max_llm_share: float | None  # tenant ceiling on LLM token share; 0.0 when not llm_allowed
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class Rejection:
    """A refused request. The HTTP layer answers ``http_status`` with error ``code``."""

    tenant_id: str
    code: Literal["insufficient_quota", "rate_limit_exceeded"]
    message: str  # names the budget and when it resets
    should_retry: bool  # -> header x-should-retry
    resets_at: int | None  # epoch s the budget resets (insufficient_quota); else None
    http_status: int = 429


Decision = Reservation | Rejection


@dataclass(frozen=True)
class SettleResult:
    """``settled``: normal; ``late``: the reservation had expired, cost still charged;
    ``duplicate``: already settled, nothing charged; ``unknown``: no record, nothing charged."""

    status: SettleStatus
    charged: float  # cost units added to spent
    overrun: float = 0.0  # cost units charged beyond the reservation (a worst-case bug)


@dataclass(frozen=True)
class RequestCounts:
    granted: int = 0  # includes degraded
    degraded: int = 0
    rejected: int = 0  # budget or concurrency refusals
    completed: int = 0
    aborted: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Usage:
    """One tenant's current period. Counters reset when a new window starts;
    ``reserved`` (live holds) carries over."""

    tenant_id: str
    period: Period
    period_start: int  # epoch seconds
    resets_at: int | None  # epoch seconds; None when the period is "none"
    limit: float  # cost units per period
    spent: float  # cost units settled in this period
    reserved: float  # cost units held by running requests
    remaining: float  # cost units: max(0, limit - spent - reserved)
    active_requests: int
    tokens: TokenCounts = field(default_factory=TokenCounts)
    requests: RequestCounts = field(default_factory=RequestCounts)
    # Epoch seconds when the first live hold expires (running requests renew theirs;
    # a crashed replica's stay until then or until an admin releases them). None: none.
    next_hold_expiry: float | None = None


@dataclass(frozen=True)
class Hold:
    """A live budget reservation (``GET /admin/tenants/{id}/holds``)."""

    id: str
    amount: float  # cost units
    expires_at: float  # epoch seconds


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "It does not reset; ask an administrator to raise the limit."
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return f"It resets at {stamp}."


def _holds(usage: Usage) -> str:
    if not usage.active_requests or usage.next_hold_expiry is None:
        return ""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(usage.next_hold_expiry))
    return (
        f" {usage.active_requests} live holds reserve {usage.reserved:g}; the first expires "
        f"at {stamp} unless its request is still running (an administrator can list and "
        f"release them: /admin/tenants/{usage.tenant_id}/holds)."
    )


def quota_rejection(
    usage: Usage, needed: float, slm_needed: float | None, policy: str
) -> Rejection:
    slm = "" if slm_needed is None else f" ({slm_needed:g} with the SLM alone)"
    why = " The tenant's policy is 'reject'." if policy == "reject" else ""
    message = (
        f"The budget of tenant '{usage.tenant_id}' cannot cover this request: {usage.spent:g} "
        f"of {usage.limit:g} cost units spent and {usage.reserved:g} reserved in the current "
        f"'{usage.period}' period; the request needs up to {needed:g}{slm}.{why} "
        + _when(usage.resets_at)
        + _holds(usage)
    )
    return Rejection(usage.tenant_id, "insufficient_quota", message, False, usage.resets_at)


def concurrency_rejection(usage: Usage, max_concurrent: int) -> Rejection:
    message = (
        f"Tenant '{usage.tenant_id}' already has {usage.active_requests} requests running "
        f"(max_concurrent={max_concurrent}); retry when one finishes."
    )
    return Rejection(usage.tenant_id, "rate_limit_exceeded", message, True, None)
