"""``POST /v1/chat/completions`` (thin: state and tenant in, serving out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.auth import CurrentTenant
from gateway.chat.serving import create_chat_completion
from gateway.state import State

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(
    request: Request,
    st: State,
    tenant: CurrentTenant,
) -> Response:
    return await create_chat_completion(st, tenant, request)
