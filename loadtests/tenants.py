"""Tenants of a load or soak run, created through the gateway's admin API.

A run gets fresh tenants (ids with a random suffix), so it can read back exactly
its own spend. Budgets use the lifetime period ``none``: a run that crosses a
window boundary (midnight UTC for ``1d``) must not see its spend reset.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

# Cost units per 1k tokens; the LLM is 10x the SLM, as in README's example tenant.
PRICES = {"slm_prompt": 0.01, "slm_completion": 0.02, "llm_prompt": 0.1, "llm_completion": 0.2}
STEADY_LIMIT = 1e6  # cost units: never reached by a bounded run
# The budget tenant pays 100x these prices: a few short answers exhaust BUDGET_LIMIT.
BUDGET_PRICES = {k: 100 * v for k, v in PRICES.items()}
BUDGET_LIMIT = 3.0  # cost units; a 32-token request's worst case at these prices is ~1.2-1.8


def create_tenant(
    admin: httpx.Client, prefix: str, limit: float, prices: dict[str, float], policy: str
) -> dict[str, Any]:
    """{"id", "key", "limit", "prices", "policy"} of a new tenant with one API key."""
    tid = f"{prefix}-{uuid.uuid4().hex[:8]}"
    config = {"budget": {"limit": limit, "period": "none"}, "prices": prices, "policy": policy}
    r = admin.post("/admin/tenants", json={"id": tid, "config": config})
    if r.status_code != 201:
        raise RuntimeError(f"creating tenant {tid}: HTTP {r.status_code} {r.text[:300]}")
    key = r.json()["key"]["plaintext"]
    return {"id": tid, "key": key, "limit": limit, "prices": prices, "policy": policy}


def create_tenants(
    url: str, admin_key: str, steady: int, budget: bool, prefix: str = "lt"
) -> dict[str, Any]:
    """``steady`` tenants with ample budgets, plus (``budget``) one that refuses with 429
    once its tiny budget is spent (policy ``reject``)."""
    if steady < 1:
        raise ValueError(f"steady: need at least 1 tenant, got {steady}")
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as admin:
        spec: dict[str, Any] = {
            "steady": [
                create_tenant(admin, prefix, STEADY_LIMIT, PRICES, "degrade") for _ in range(steady)
            ],
            "budget": None,
        }
        if budget:
            spec["budget"] = create_tenant(
                admin, f"{prefix}-budget", BUDGET_LIMIT, BUDGET_PRICES, "reject"
            )
    return spec


def write_spec(spec: dict[str, Any], path: Path) -> None:
    """The spec holds API keys: the file is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(spec, indent=1) + "\n")


def usage(url: str, admin_key: str, tenant_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    r = httpx.get(f"{url}/admin/tenants/{tenant_id}/usage", headers=headers, timeout=30)
    r.raise_for_status()
    return r.json()
