"""Admission: a validated request becomes a running ``gateway.runner.Run``, or is refused.

    start(st, tenant, spec)  (the request is parsed and validated: 400s are behind it)
        root span -> scheduler limits (400) -> capacity (503) -> requests / tokens per
        minute (429) -> reserve the worst case (429) -> engine.submit: the scheduler's
        one queue, with a deadline of arrival + CITER_QUEUE_TIMEOUT_S -> Run (its own
        task; see gateway.runner)

A refusal ends the request's root span with its status and leaves nothing behind:
the capacity slot is released and a reservation already taken is settled at no cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engines.types import Request
from gateway.budget import reserve, take_rate
from gateway.common import start_root_span
from gateway.errors import APIError, bad_request
from gateway.routing import routing_params
from gateway.runner import Run, RunSpec, span_context
from gateway.state import GatewayState
from gateway.tenancy import Tenant, TokenCounts, settle_tokens


async def start(st: GatewayState, tenant: Tenant, spec: RunSpec, seed: int | None) -> Run:
    """Admit a validated request: limits (400), capacity (503), budget (429), then the
    scheduler's queue. A refusal ends the request's root span with its status."""
    sp = spec.sampling
    root = start_root_span(
        st, spec.operation, spec.model, tenant.id,
        max_tokens=sp.max_tokens, temperature=sp.temperature, top_p=sp.top_p, seed=seed,
    )  # fmt: skip
    root.set_attribute("gen_ai.response.id", spec.request_id)
    with _ends_on_refusal(root):
        try:  # the scheduler's own limits, before any side effect
            rp = routing_params(spec.plan, True, None)  # the budget may only narrow it
            st.scheduler.validate(Request(spec.request_id, spec.prompt_ids, sp, rp,
                                          grammar=spec.grammar))  # fmt: skip
        except ValueError as e:
            raise bad_request(str(e)) from e
        st.acquire_slot(tenant.id)
        try:
            rate = await take_rate(st, tenant, len(spec.prompt_ids) + sp.max_tokens)
            ctx = span_context(root)
            with st.tracer.start_as_current_span("budget.reserve", context=ctx) as span:
                res = await reserve(st, tenant, spec.plan.mode, len(spec.prompt_ids),
                                    sp.max_tokens, span)  # fmt: skip
            rp = routing_params(spec.plan, res.llm_allowed, res.max_llm_share)
            waited = time.perf_counter() - spec.arrived
            deadline = time.monotonic() + st.settings.queue_timeout_s - waited
            try:
                handle = st.engine.submit(Request(spec.request_id, spec.prompt_ids, sp, rp,
                                                  deadline, spec.grammar))  # fmt: skip
            except BaseException:  # nothing ran: the hold goes back at no cost
                await settle_tokens(st.store, res, tenant, TokenCounts(), "failed")
                raise
        except BaseException:
            st.release_slot()
            raise
    run = Run(st, tenant, res, spec, root, handle)
    run.rate_headers = rate
    run.task = asyncio.create_task(run.main())
    st.runs.add(run)
    run.task.add_done_callback(lambda _: st.runs.discard(run))
    return run


@contextmanager
def _ends_on_refusal(root: Any) -> Iterator[None]:
    try:
        yield
    except BaseException as e:
        if isinstance(e, APIError):
            root.set_attribute("error.type", str(e.status))
        root.end()
        raise
