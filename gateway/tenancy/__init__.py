"""Tenants and budgets: API keys, cost budgets, and the reserve/settle protocol.

A tenant owns API keys (only their sha256 is stored; the ``sk-citer-``
plaintext is shown once), a budget (``limit`` cost units per fixed,
epoch-aligned ``period``: 1h, 1d, 30d or none), prices in cost units per 1k
tokens for SLM/LLM prompt/completion tokens (LLM catch-up counts as LLM
prompt), a policy for when the budget cannot pay for LLM tokens (``degrade``:
serve with the SLM alone; ``reject``: HTTP 429 ``insufficient_quota``), an
optional ceiling on the LLM token share and an optional cap on concurrent
requests.

Each request reserves its worst case before it starts (``reserve``, atomic
against ``limit - spent - reserved``) and settles its actual cost when it ends,
also when aborted or failed (``settle``). Reservations expire after a TTL so a
crashed gateway does not hold budget forever; settling twice charges once.

Two stores with one interface (``TenantStore``), chosen by ``open_store(url)``:
an embedded in-process store and a Redis store whose budget operations are Lua
scripts (atomic across replicas, state survives restarts).

Data flow: authenticate(key) -> Tenant -> reserve_for_request -> Reservation |
Rejection -> (serve) -> settle_tokens -> SettleResult; usage(tenant) for reports.
"""

from gateway.tenancy.config import Budget, Prices, TenancySettings, TenantConfig
from gateway.tenancy.cost import TokenCounts, actual_cost, worst_case_cost
from gateway.tenancy.records import (
    Decision,
    Hold,
    IssuedKey,
    KeyInfo,
    Rejection,
    RequestCounts,
    Reservation,
    SettleResult,
    Tenant,
    TenantExists,
    TenantNotFound,
    Usage,
)
from gateway.tenancy.store import TenantStore, open_store, reserve_for_request, settle_tokens

__all__ = [
    "Budget",
    "Decision",
    "Hold",
    "IssuedKey",
    "KeyInfo",
    "Prices",
    "Rejection",
    "RequestCounts",
    "Reservation",
    "SettleResult",
    "TenancySettings",
    "Tenant",
    "TenantConfig",
    "TenantExists",
    "TenantNotFound",
    "TenantStore",
    "TokenCounts",
    "Usage",
    "actual_cost",
    "open_store",
    "reserve_for_request",
    "settle_tokens",
    "worst_case_cost",
]
