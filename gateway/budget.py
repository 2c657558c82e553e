"""Budget calls of one request: its rate limits (requests / tokens per minute), reserve
its worst case, renew the hold while it lives, bill what the engines processed and
settle once.

Worst cases come from ``gateway.tenancy.worst_case_cost``, which bounds the
scheduler's accounting (``RequestStats``); a refusal becomes HTTP 429.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from engines.stats import RequestStats
from engines.types import FINISH_ABORT, TokenEvent
from gateway.errors import APIError
from gateway.state import GatewayState
from gateway.tenancy import (
    Rejection,
    Reservation,
    Tenant,
    TokenCounts,
    ratelimit,
    reserve_for_request,
    settle_tokens,
)
from gateway.tenancy.cost import cost_of

log = logging.getLogger("citer.gateway")


def billed_tokens(stats: RequestStats | None, prompt: int, slm: int, llm: int) -> TokenCounts:
    """What the engines processed; without final stats (a failed step) the counts seen:
    the completion tokens streamed, and the prompt once if any token was made."""
    if stats is None:
        return TokenCounts(
            slm_prompt=prompt if slm + llm else 0, slm_completion=slm, llm_completion=llm
        )
    return TokenCounts(
        slm_prompt=stats.slm_input_tokens,
        slm_completion=stats.slm_tokens,
        llm_prompt=stats.llm_input_tokens,
        llm_completion=stats.llm_tokens,
    )


async def take_rate(st: GatewayState, tenant: Tenant, tokens: int) -> dict[str, str]:
    """The tenant's requests / tokens per minute: OpenAI's x-ratelimit-* headers for
    the response, or 429 rate_limit_exceeded with Retry-After (the window's end)."""
    rpm, tpm = tenant.config.rpm, tenant.config.tpm
    if rpm is None and tpm is None:
        return {}
    if tpm is not None and tokens > tpm:
        st.metrics.rejected.labels(tenant.id, "rate_limit_exceeded").inc()
        raise APIError(429, f"This request needs {tokens} tokens (prompt + max_tokens), more "
                       f"than this tenant's limit of {tpm} tokens per minute; lower max_tokens.",
                       "tokens", None, "rate_limit_exceeded",
                       {"x-should-retry": "false"})  # fmt: skip
    res = await st.store.take_rate(tenant.id, rpm, tpm, tokens)
    out = ratelimit.headers(rpm, tpm, res)
    if not res.allowed:
        st.metrics.rejected.labels(tenant.id, "rate_limit_exceeded").inc()
        kind = "requests" if rpm is not None and res.requests + 1 > rpm else "tokens"
        wait = max(1, math.ceil(res.reset_s))
        raise APIError(429, f"Rate limit reached: this tenant's {kind} per minute are used "
                       f"up; retry in {wait} s.", kind, None, "rate_limit_exceeded",
                       {**out, "Retry-After": str(wait), "x-should-retry": "true"})  # fmt: skip
    return out


async def reserve(
    st: GatewayState, tenant: Tenant, mode: str, prompt: int, max_tokens: int, span: Any
) -> Reservation:
    """Hold the worst case (SLM-only for ``slm``); refusals -> 429 with OpenAI's headers."""
    decision = await reserve_for_request(st.store, tenant, prompt, max_tokens, mode != "slm")
    span.set_attribute("citer.budget.granted", isinstance(decision, Reservation))
    if isinstance(decision, Rejection):
        st.metrics.rejected.labels(tenant.id, decision.code).inc()
        headers = {"x-should-retry": "true" if decision.should_retry else "false"}
        if decision.should_retry:
            headers["Retry-After"] = str(st.settings.retry_after_s)
        kind = "insufficient_quota" if decision.code == "insufficient_quota" else "requests"
        raise APIError(429, decision.message, kind, None, decision.code, headers)
    span.set_attribute("citer.budget.reserved", decision.amount)
    if decision.degraded:
        st.metrics.degraded.labels(tenant.id).inc()
    return decision


async def settle(
    st: GatewayState,
    tenant: Tenant,
    reservation: Reservation,
    tokens: TokenCounts,
    outcome: str,
    context: Any,
) -> float:
    """Charge the tokens the engines processed, once (the store is idempotent); the
    cost in cost units. A store failure is logged: the hold then expires by its TTL."""
    cost = cost_of(tenant.config.prices, tokens)
    with st.tracer.start_as_current_span("budget.settle", context=context) as span:
        span.set_attribute("citer.outcome", outcome)
        span.set_attribute("citer.cost", cost)
        settling = settle_tokens(st.store, reservation, tenant, tokens, outcome)  # type: ignore[arg-type]
        try:
            result = await asyncio.shield(settling)
        except Exception:
            log.exception("settling %s failed", reservation.id)
            return cost
        span.set_attribute("citer.settle.status", result.status)
    st.metrics.spend.labels(tenant.id).inc(cost)
    return cost


async def renew_hold(st: GatewayState, reservation: Reservation) -> None:
    """Keep a hold alive while its request lives (renewed a third of its TTL ahead of
    expiry); a crashed process stops renewing and the store expires the hold."""
    ttl = st.hold_ttl_s
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            await st.store.renew(reservation, ttl)
        except Exception:  # the store is down: settle still charges a late hold once
            log.warning("renewing hold %s failed", reservation.id, exc_info=True)


def outcome(final: TokenEvent | None, error: BaseException | None) -> str:
    """How the budget store counts the request's end."""
    if isinstance(error, APIError):  # refused before it ran (queue timeout)
        return "aborted"
    if error is not None:
        return "failed"
    return "aborted" if final is None or final.finish_reason == FINISH_ABORT else "completed"
