"""One request's life in the gateway, from budget reservation to settlement.

    start_run: queue slot (503) -> reserve worst case (429) -> routing params
               -> AsyncEngine.submit -> Run
    Run._pump (a task of its own, independent of the client connection):
        TokenEvents -> metrics -> the response's queue; on the final event:
        bill the tokens the engine processed, settle, then release the final
        event (so a client that got its answer sees the spend recorded)
    client gone (disconnect / cancelled stream) -> Run.abort -> the scheduler drops
        the request at its next step -> final "abort" event -> settle "aborted"

Invariant: every reservation is settled exactly once and every queue slot
released exactly once, whatever the client does; only a crashed process
leaves a reservation, which the store expires after its TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from engines.types import FINISH_ABORT, Request, RequestStats, SamplingParams, TokenEvent
from gateway.errors import APIError, bad_request
from gateway.routing import RoutePlan, routing_params
from gateway.state import GatewayState
from gateway.tenancy import Rejection, Reservation, Tenant, TokenCounts, worst_case_cost
from gateway.tenancy.cost import cost_of

log = logging.getLogger("citer.gateway")


@dataclass(frozen=True)
class RunSpec:
    request_id: str
    operation: str  # "chat" or "text_completion" (gen_ai.operation.name)
    model: str  # as the client named it
    plan: RoutePlan
    prompt_ids: list[int]
    sampling: SamplingParams
    arrived: float  # time.perf_counter() when the request arrived


def billed_tokens(stats: RequestStats | None, prompt: int, slm: int, llm: int) -> TokenCounts:
    """What the engine processed; without final stats (a failed step), the counts seen."""
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


async def reserve(st: GatewayState, tenant: Tenant, spec: RunSpec, root: Any) -> Reservation:
    """Hold the worst case; a refusal becomes HTTP 429 (policy and headers per reason)."""
    prices, n, m = tenant.config.prices, len(spec.prompt_ids), spec.sampling.max_tokens
    slm_only = worst_case_cost(prices, n, m, llm_allowed=False)
    with st.tracer.start_as_current_span("budget.reserve", context=_ctx(root)) as span:
        if spec.plan.mode == "slm" or tenant.config.max_llm_share == 0.0:
            decision = await st.store.reserve(tenant.id, slm_only, None)
        else:
            full = worst_case_cost(prices, n, m, llm_allowed=True)
            decision = await st.store.reserve(tenant.id, full, slm_only)
        span.set_attribute("citer.budget.granted", isinstance(decision, Reservation))
    if isinstance(decision, Rejection):
        st.metrics.rejected.labels(tenant.id, decision.code).inc()
        root.set_attribute("citer.rejected", decision.code)
        headers = {"x-should-retry": "true" if decision.should_retry else "false"}
        if decision.should_retry:
            headers["Retry-After"] = str(st.settings.retry_after_s)
        kind = "insufficient_quota" if decision.code == "insufficient_quota" else "requests"
        raise APIError(429, decision.message, kind, None, decision.code, headers)
    if decision.degraded:
        st.metrics.degraded.labels(tenant.id).inc()
    return decision


async def start_run(st: GatewayState, tenant: Tenant, spec: RunSpec, root: Any) -> Run:
    st.acquire_slot(tenant.id)
    try:
        res = await reserve(st, tenant, spec, root)
    except BaseException:
        st.release_slot()
        raise
    rp = routing_params(spec.plan, spec.sampling.max_tokens, res.llm_allowed, res.max_llm_share)
    run = Run(st, tenant, res, spec, root)
    try:
        handle = st.engine.submit(Request(spec.request_id, spec.prompt_ids, spec.sampling, rp))
    except ValueError as e:  # the scheduler's own validation: nothing ran, nothing to bill
        await run.settle(TokenCounts(), "failed")
        st.release_slot()
        raise bad_request(str(e)) from e
    run.task = asyncio.create_task(run.pump(handle))
    st.tasks.add(run.task)
    run.task.add_done_callback(st.tasks.discard)
    return run


class Run:
    def __init__(
        self, st: GatewayState, tenant: Tenant, res: Reservation, spec: RunSpec, root: Any
    ) -> None:
        self.st, self.tenant, self.reservation, self.spec, self.root = st, tenant, res, spec, root
        self.queue: asyncio.Queue[TokenEvent | BaseException] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.done = False  # the engine has ended the request
        self.cost = 0.0  # cost units settled (valid once the final event is out)
        self.tokens = TokenCounts()

    @property
    def degraded(self) -> bool:
        return self.reservation.degraded

    def abort(self) -> None:
        """Idempotent; the request ends at the scheduler's next step."""
        if not self.done:
            self.done = True
            self.st.engine.abort(self.spec.request_id)

    async def events(self) -> AsyncIterator[TokenEvent]:
        """The request's token events, ending with the one that has a finish_reason."""
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finish_reason is not None:
                return

    async def pump(self, handle: AsyncIterator[TokenEvent]) -> None:
        st, spec, m = self.st, self.spec, self.st.metrics
        mode = spec.plan.mode
        first = last = 0.0
        counts = {"slm": 0, "llm": 0}
        final: TokenEvent | None = None
        error: BaseException | None = None
        phase = st.tracer.start_span("engine.queue_prefill", context=_ctx(self.root))
        try:
            async for ev in handle:
                now = time.perf_counter()
                if ev.token_id is not None:
                    if not first:
                        first = now
                        m.ttft.labels(mode).observe(now - spec.arrived)
                        phase.end()
                        phase = st.tracer.start_span("engine.decode", context=_ctx(self.root))
                    else:
                        m.itl.labels(mode).observe(now - last)
                    last = now
                    counts[ev.source or "slm"] += 1
                if ev.finish_reason is not None:
                    final = ev
                    break
                self.queue.put_nowait(ev)
        except Exception as e:  # a failed engine step: the stream ends with an error
            error = e
            log.exception("request %s failed in the engine", spec.request_id)
        finally:
            phase.end()
            self.done = True
            stats = final.stats if final is not None else None
            self.tokens = billed_tokens(stats, len(spec.prompt_ids), counts["slm"], counts["llm"])
            if error is not None:
                outcome = "failed"
            elif final is None or final.finish_reason == FINISH_ABORT:
                outcome = "aborted"
            else:
                outcome = "completed"
            await self.settle(self.tokens, outcome)
            st.release_slot()
            self._observe(outcome, final, time.perf_counter())
            self.queue.put_nowait(error if error is not None else final or _aborted(spec))
        await self._refresh_remaining()

    async def settle(self, tokens: TokenCounts, outcome: str) -> None:
        self.cost = cost_of(self.tenant.config.prices, tokens)
        with self.st.tracer.start_as_current_span("budget.settle", context=_ctx(self.root)) as s:
            s.set_attribute("citer.cost", self.cost)
            s.set_attribute("citer.outcome", outcome)
            try:
                settling = self.st.store.settle(self.reservation, self.cost, tokens, outcome)  # type: ignore[arg-type]
                result = await asyncio.shield(settling)
                s.set_attribute("citer.settle.status", result.status)
            except Exception:  # the reservation expires by its TTL; the answer still goes out
                log.exception("settling %s failed", self.reservation.id)
                return
        self.st.metrics.spend.labels(self.tenant.id).inc(self.cost)

    def _observe(self, outcome: str, final: TokenEvent | None, now: float) -> None:
        m, mode, t = self.st.metrics, self.spec.plan.mode, self.tokens
        completion = t.slm_completion + t.llm_completion
        if outcome == "completed" and final is not None:
            m.e2e.labels(mode).observe(now - self.spec.arrived)
            m.success.labels(mode, final.finish_reason or "stop").inc()
            m.llm_share.labels(mode).observe(t.llm_share)
        else:
            m.aborted.labels(mode, outcome).inc()
        m.prompt_tokens.labels(mode).inc(len(self.spec.prompt_ids))
        m.generation_tokens.labels(mode).inc(completion)
        m.tokens_by_source.labels(mode, "slm").inc(t.slm_completion)
        m.tokens_by_source.labels(mode, "llm").inc(t.llm_completion)
        r = self.root
        r.set_attribute("gen_ai.usage.input_tokens", len(self.spec.prompt_ids))
        r.set_attribute("gen_ai.usage.output_tokens", completion)
        reason = final.finish_reason if final is not None else outcome
        r.set_attribute("gen_ai.response.finish_reasons", [reason or outcome])
        r.set_attribute("citer.slm_tokens", t.slm_completion)
        r.set_attribute("citer.llm_tokens", t.llm_completion)
        r.set_attribute("citer.llm_token_share", t.llm_share)
        r.set_attribute("citer.cost", self.cost)
        r.set_attribute("citer.outcome", outcome)
        r.set_attribute("citer.degraded", self.degraded)
        r.end()

    async def _refresh_remaining(self) -> None:
        try:
            usage = await self.st.store.usage(self.tenant.id)
        except Exception:  # a metric only; the next request refreshes it
            return
        self.st.metrics.remaining.labels(self.tenant.id).set(usage.remaining)


def _ctx(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def _aborted(spec: RunSpec) -> TokenEvent:
    return TokenEvent(spec.request_id, None, "", None, None, FINISH_ABORT)
