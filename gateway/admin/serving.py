"""Tenant administration on top of the store (keys shown once, on creation)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from gateway.admin.protocol import CLEARABLE, CreateTenant, UpdateTenant
from gateway.errors import APIError, bad_request, from_validation
from gateway.tenancy import Prices, Tenant, TenantExists, TenantNotFound, TenantStore


def tenant_json(t: Tenant) -> dict[str, Any]:
    return {"id": t.id, "created_at": t.created_at, "config": t.config.model_dump()}


def not_found(tenant_id: str) -> APIError:
    return APIError(
        404, f"No tenant '{tenant_id}'.", "not_found_error", "tenant_id", "tenant_not_found"
    )


async def get(store: TenantStore, tenant_id: str) -> Tenant:
    tenant = await store.get_tenant(tenant_id)
    if tenant is None:
        raise not_found(tenant_id)
    return tenant


async def create(store: TenantStore, body: CreateTenant, default_prices: Prices) -> dict[str, Any]:
    """A tenant created without prices pays ``default_prices`` (CITER_DEFAULT_PRICES):
    all-zero prices would make its budget meaningless without saying so."""
    config = body.config
    if "prices" not in config.model_fields_set:
        config = config.with_changes(prices=default_prices.model_dump())
    try:
        tenant = await store.create_tenant(body.id, config)
    except TenantExists as e:
        raise APIError(409, str(e), code="tenant_exists", param="id") from e
    except ValueError as e:
        raise bad_request(str(e), "id") from e
    out = tenant_json(tenant)
    if body.issue_key:
        out["key"] = asdict(await store.issue_key(tenant.id))
    return out


async def update(store: TenantStore, tenant_id: str, body: UpdateTenant) -> dict[str, Any]:
    tenant = await get(store, tenant_id)
    changes = body.model_dump(exclude_none=True, exclude={"clear"})
    for name in body.clear:
        if name not in CLEARABLE:
            raise bad_request(f"clear: {name!r} cannot be cleared", "clear")
        changes[name] = None
    try:
        config = tenant.config.with_changes(**changes)
    except ValidationError as e:
        raise from_validation(e) from e
    try:
        return tenant_json(await store.update_tenant(tenant_id, config))
    except TenantNotFound as e:
        raise not_found(tenant_id) from e
