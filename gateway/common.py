"""Request plumbing shared by the OpenAI endpoints: validation, sampling parameters,
usage objects, SSE framing and disconnect detection (bodies: ``gateway.body``)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from engines.types import SamplingParams, TokenEvent
from gateway.errors import bad_request, from_validation
from gateway.fields import stop_list
from gateway.state import GatewayState

log = logging.getLogger("citer.gateway")
M = TypeVar("M", bound=BaseModel)
SSE_DONE = "data: [DONE]\n\n"


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate a request object: 400 naming the bad (or unknown) field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise from_validation(e) from e


def check_prompt_chars(st: GatewayState, chars: int, param: str) -> None:
    """Refuse a text that must exceed the prompt limit before tokenizing it: no token
    spells more than ``st.max_token_chars`` characters, and Unicode normalisation
    (NFC/NFKC) composes at most 3 characters into one (Hangul jamo)."""
    least = -(-chars // (3 * st.max_token_chars))
    if least > st.max_prompt_tokens:
        raise bad_request(
            f"This model's maximum prompt length is {st.max_prompt_tokens} tokens; "
            f"your prompt has {chars} characters, so at least {least} tokens.",
            param,
            "context_length_exceeded",
        )


def check_prompt(st: GatewayState, prompt_ids: list[int], param: str = "messages") -> None:
    if not prompt_ids:
        raise bad_request("The prompt is empty (0 tokens).", param)
    if len(prompt_ids) > st.max_prompt_tokens:
        raise bad_request(
            f"This model's maximum prompt length is {st.max_prompt_tokens} tokens; "
            f"your prompt has {len(prompt_ids)} tokens.",
            param,
            "context_length_exceeded",
        )


def sampling_params(
    st: GatewayState,
    prompt_len: int,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    stop: str | list[str] | None,
    seed: int | None,
    param: str = "max_tokens",
    logprobs: int | None = None,
    top_k: int = 0,
    prompt_logprobs: int | None = None,
) -> SamplingParams:
    cap = st.settings.max_tokens_cap
    if max_tokens is not None and max_tokens > cap:
        raise bad_request(f"{param}={max_tokens} exceeds this server's limit of {cap}.", param)
    room = st.scheduler.max_context - prompt_len  # completion tokens the context allows
    wanted = st.settings.default_max_tokens if max_tokens is None else max_tokens
    if top_k >= st.scheduler.vocab:  # every token is in the top k: the filter is off
        top_k = 0
    try:
        return SamplingParams(
            max_tokens=0 if wanted == 0 else max(1, min(wanted, room)),  # 0: prompt only
            temperature=1.0 if temperature is None else temperature,  # OpenAI's default
            top_p=1.0 if top_p is None else top_p,
            top_k=top_k,
            stop=stop_list(stop),
            seed=seed,
            logprobs=logprobs,  # None: the engines compute no log-probs
            prompt_logprobs=prompt_logprobs,
        )
    except ValueError as e:
        raise bad_request(str(e)) from e


def usage(run: Any) -> dict[str, Any]:
    """OpenAI usage plus who wrote the answer and what it cost (cost units)."""
    t = run.tokens
    prompt, completion = len(run.spec.prompt_ids), t.slm_completion + t.llm_completion
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "slm_tokens": t.slm_completion,
        "llm_tokens": t.llm_completion,
        "llm_token_share": round(t.llm_share, 6),
        # Positions routed to the LLM that the SLM wrote: the remote LLM failed (fail open).
        "llm_fallback_tokens": run.fallback_tokens,
        # Tokens a grammar (response_format, tools) allowed alone: never sent to the LLM.
        "forced_tokens": run.forced_tokens,
        "cost": run.cost,
    }


def routing_info(st: GatewayState, run: Any) -> dict[str, Any]:
    """How the request was routed; ``degraded`` says the budget forced the SLM alone."""
    plan = run.spec.plan
    return {
        "policy": st.setup.policy if plan.mode == "citer" else plan.mode,
        "threshold": plan.threshold if plan.mode == "citer" else None,
        "target_llm_share": plan.target_llm_share,
        "degraded": run.degraded,
        "degraded_reason": "budget: served by the SLM alone" if run.degraded else None,
    }


def source_entry(ev: TokenEvent) -> dict[str, Any]:
    score = ev.score if ev.score is not None and math.isfinite(ev.score) else None
    entry = {"token_id": ev.token_id, "text": ev.text, "source": ev.source, "score": score}
    if ev.fallback:  # an SLM token where the router had sent the LLM, which failed
        entry["fallback"] = True
    return entry


def response_headers(run: Any) -> dict[str, str]:
    headers = {"x-request-id": run.spec.request_id, **run.rate_headers}
    if run.degraded:
        headers["x-citer-degraded"] = "budget"
    return headers


def sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


async def abort_on_disconnect(request: Request, run: Any) -> None:
    """Abort ``run`` when the client goes away (the body must be read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            run.abort()
            return


def watch(request: Request, run: Any) -> asyncio.Task[None]:
    return asyncio.create_task(abort_on_disconnect(request, run))


def start_root_span(st: GatewayState, operation: str, model: str, tenant: str, **attrs: Any):
    span = st.tracer.start_span(f"{operation} {model}")
    span.set_attribute("gen_ai.operation.name", operation)
    span.set_attribute("gen_ai.provider.name", "citer")
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("citer.tenant", tenant)
    for k, v in attrs.items():
        if v is not None:
            span.set_attribute(f"gen_ai.request.{k}", v)
    return span


def now() -> int:
    return int(time.time())
