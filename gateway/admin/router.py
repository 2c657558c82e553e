"""``/admin/*``: tenants, keys, budgets, prices, policies and usage (admin key only).

Bodies are read as JSON whatever the Content-Type (like the OpenAI endpoints), so
``curl -d '{...}'`` works."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from gateway.admin import serving
from gateway.admin.protocol import CreateTenant, UpdateTenant
from gateway.auth import require_admin
from gateway.body import read_json
from gateway.common import parse
from gateway.errors import APIError
from gateway.state import State

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


@router.post("/tenants", status_code=201)
async def create_tenant(request: Request, st: State) -> Any:
    body = parse(CreateTenant, await read_json(request, st.settings.max_body_bytes))
    created = await serving.create(st.store, body, st.settings.default_prices)
    return JSONResponse(created, status_code=201)


@router.get("/tenants")
async def list_tenants(st: State) -> dict[str, Any]:
    return {"object": "list", "data": sorted(await st.store.list_tenants())}


@router.get("/tenants/{tenant_id}")
async def get_tenant(tenant_id: str, st: State) -> dict[str, Any]:
    return serving.tenant_json(await serving.get(st.store, tenant_id))


@router.patch("/tenants/{tenant_id}")
async def update_tenant(tenant_id: str, request: Request, st: State) -> dict[str, Any]:
    body = parse(UpdateTenant, await read_json(request, st.settings.max_body_bytes))
    return await serving.update(st.store, tenant_id, body)


@router.post("/tenants/{tenant_id}/keys", status_code=201)
async def issue_key(tenant_id: str, st: State) -> Any:
    await serving.get(st.store, tenant_id)
    return JSONResponse(asdict(await st.store.issue_key(tenant_id)), status_code=201)


@router.get("/tenants/{tenant_id}/keys")
async def list_keys(tenant_id: str, st: State) -> dict[str, Any]:
    await serving.get(st.store, tenant_id)
    return {"object": "list", "data": [asdict(k) for k in await st.store.list_keys(tenant_id)]}


@router.delete("/tenants/{tenant_id}/keys/{key_id}")
async def revoke_key(tenant_id: str, key_id: str, st: State) -> dict[str, Any]:
    await serving.get(st.store, tenant_id)
    if not await st.store.revoke_key(tenant_id, key_id):
        raise APIError(
            404,
            f"Tenant '{tenant_id}' has no key '{key_id}'.",
            "not_found_error",
            "key_id",
            "key_not_found",
        )
    return {"id": key_id, "revoked": True}


@router.get("/tenants/{tenant_id}/usage")
async def tenant_usage(tenant_id: str, st: State) -> dict[str, Any]:
    await serving.get(st.store, tenant_id)
    return asdict(await st.store.usage(tenant_id))


@router.get("/tenants/{tenant_id}/holds")
async def list_holds(tenant_id: str, st: State) -> dict[str, Any]:
    """Live budget holds (requests running or queued, or left by a crashed replica)."""
    await serving.get(st.store, tenant_id)
    return {"object": "list", "data": [asdict(h) for h in await st.store.list_holds(tenant_id)]}


@router.delete("/tenants/{tenant_id}/holds")
async def release_holds(tenant_id: str, st: State) -> dict[str, Any]:
    """Return every hold's budget now (a late settle of its request still charges once)."""
    await serving.get(st.store, tenant_id)
    return {"released": await st.store.release_holds(tenant_id)}


@router.delete("/tenants/{tenant_id}/holds/{hold_id}")
async def release_hold(tenant_id: str, hold_id: str, st: State) -> dict[str, Any]:
    await serving.get(st.store, tenant_id)
    if not await st.store.release_holds(tenant_id, [hold_id]):
        raise APIError(
            404,
            f"Tenant '{tenant_id}' has no live hold '{hold_id}'.",
            "not_found_error",
            "hold_id",
            "hold_not_found",
        )
    return {"id": hold_id, "released": True}
