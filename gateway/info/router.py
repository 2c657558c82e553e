"""Read-only endpoints: models, liveness, readiness, version, metrics, own usage."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.auth import CurrentTenant, Reader, may_read_tenant_metrics
from gateway.errors import model_not_found
from gateway.info.serving import model_cards, readiness, version
from gateway.state import State

router = APIRouter()


@router.get("/v1/models", dependencies=[Reader])
async def list_models(st: State) -> dict[str, Any]:
    return {"object": "list", "data": model_cards(st)}


@router.get("/v1/models/{model_id}", dependencies=[Reader])
async def get_model(model_id: str, st: State) -> dict[str, Any]:
    for card in model_cards(st):
        if card["id"] == model_id:
            return card
    raise model_not_found(model_id)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(st: State) -> JSONResponse:
    ok, checks = await readiness(st)
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/version")
async def get_version(st: State) -> dict[str, Any]:
    return version(st)


@router.get("/metrics")
async def metrics(request: Request, st: State) -> Response:
    """Prometheus text; per-tenant series only with the metrics or admin key."""
    per_tenant = may_read_tenant_metrics(request, st)
    return Response(st.metrics.render(per_tenant), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/usage")
async def own_usage(st: State, tenant: CurrentTenant) -> dict[str, Any]:
    """The caller's tenant only: its budget, spend and remaining in the current period."""
    return asdict(await st.store.usage(tenant.id))
