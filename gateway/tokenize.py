"""``POST /tokenize`` and ``POST /detokenize``, as vLLM serves them (behind the API key).

    /tokenize    {"model", "prompt": str} or {"model", "messages": [...]}
                 (+ add_special_tokens, default true; add_generation_prompt for messages,
                 default true) -> {"count", "max_model_len", "tokens"}
    /detokenize  {"model", "tokens": [int]} -> {"prompt": str}

Both models share one tokenizer, so every served model name gives the same answer;
an unknown one is 404 as on the completion endpoints. Messages go through the same
chat template as /v1/chat/completions; work runs off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from gateway.auth import CurrentTenant
from gateway.body import read_json
from gateway.chat.protocol import MAX_MODEL_CHARS, ChatMessage, chat_prompt
from gateway.common import check_prompt_chars, parse
from gateway.errors import bad_request
from gateway.fields import Strict
from gateway.routing import plan_route
from gateway.state import GatewayState, State

router = APIRouter()


class TokenizeRequest(Strict):
    model: str = Field(max_length=MAX_MODEL_CHARS)
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    add_special_tokens: bool = True
    add_generation_prompt: bool = True


class DetokenizeRequest(Strict):
    model: str = Field(max_length=MAX_MODEL_CHARS)
    tokens: list[int]


def _ids(st: GatewayState, req: TokenizeRequest) -> list[int]:
    if req.messages is not None:
        return chat_prompt(st.tokenizer, req.messages, [], req.add_generation_prompt)
    return list(st.tokenizer.encode(req.prompt, add_special_tokens=req.add_special_tokens))


@router.post("/tokenize")
async def tokenize(request: Request, st: State, tenant: CurrentTenant) -> dict[str, Any]:
    req = parse(TokenizeRequest, await read_json(request, st.settings.max_body_bytes))
    plan_route(req.model, None, st.setup)  # 404 for a model this gateway does not serve
    if (req.prompt is None) == (req.messages is None):
        raise bad_request("Send either prompt or messages.", "prompt")
    chars = len(req.prompt or "") + sum(len(m.text()) for m in req.messages or [])
    check_prompt_chars(st, chars, "messages" if req.messages else "prompt")
    try:
        ids = await asyncio.to_thread(_ids, st, req)
    except Exception as e:  # template errors (jinja raise_exception, bad roles)
        raise bad_request(f"messages: {e}", "messages") from e
    return {"count": len(ids), "max_model_len": st.scheduler.max_context, "tokens": ids}


@router.post("/detokenize")
async def detokenize(request: Request, st: State, tenant: CurrentTenant) -> dict[str, str]:
    req = parse(DetokenizeRequest, await read_json(request, st.settings.max_body_bytes))
    plan_route(req.model, None, st.setup)
    vocab = st.scheduler.vocab
    if any(not 0 <= t < vocab for t in req.tokens):
        raise bad_request(f"tokens: every id must lie in [0, {vocab})", "tokens")
    text = await asyncio.to_thread(st.tokenizer.decode, req.tokens)
    return {"prompt": text}
