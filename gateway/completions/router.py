"""``POST /v1/completions`` (thin: state and tenant in, serving out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.auth import CurrentTenant
from gateway.completions.serving import create_completion
from gateway.state import State

router = APIRouter()


@router.post("/v1/completions")
async def completions(
    request: Request,
    st: State,
    tenant: CurrentTenant,
) -> Response:
    return await create_completion(st, tenant, request)
