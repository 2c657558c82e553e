"""One request's life in the gateway, from budget reservation to settlement.

    start_run: scheduler.validate (400) -> queue slot (503) -> reserve worst case
               (429) -> routing params -> Run task
    Run.main (a task of its own, independent of the client connection):
        queue   wait for a batch seat (FIFO, at most max_batch submitted at once);
                none within queue_timeout_s of arrival -> 503, hold released
        renew   while it runs, the budget hold is renewed every TTL / 3
        engine  AsyncEngine.submit -> TokenEvents -> metrics -> the response's queue
        settle  on the final event: bill what the engines processed, settle, then
                release the final event (a client that got its answer sees the spend)
    client gone (disconnect / closed stream) -> Run.abort: a queued run is cancelled,
        a submitted one is dropped by the scheduler at its next step -> settle "aborted"

Invariant: every reservation is settled exactly once and every queue slot and
batch seat released exactly once, whatever the client does; only a crashed
process leaves a reservation, which the store expires after its TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from engines.types import FINISH_ABORT, FINISH_ERROR, Request, SamplingParams, TokenEvent
from gateway.budget import billed_tokens, reserve
from gateway.common import start_root_span
from gateway.errors import APIError, bad_request
from gateway.routing import RoutePlan, routing_params
from gateway.state import GatewayState
from gateway.tenancy import Reservation, Tenant, TokenCounts
from gateway.tenancy.cost import cost_of

log = logging.getLogger("citer.gateway")


class EngineError(RuntimeError):
    """This request's own work raised in a scheduler step; other requests went on."""


@dataclass(frozen=True)
class RunSpec:
    request_id: str
    operation: str  # "chat" or "text_completion" (gen_ai.operation.name)
    model: str  # as the client named it
    plan: RoutePlan
    prompt_ids: list[int]
    sampling: SamplingParams
    arrived: float  # time.perf_counter() when the request arrived


async def launch(st: GatewayState, tenant: Tenant, spec: RunSpec, seed: int | None) -> Run:
    """Open the request's root span (one trace per request) and start its run;
    a refusal (budget, limits) ends the span with the error status."""
    sp = spec.sampling
    root = start_root_span(
        st, spec.operation, spec.model, tenant.id,
        max_tokens=sp.max_tokens, temperature=sp.temperature, top_p=sp.top_p, seed=seed,
    )  # fmt: skip
    root.set_attribute("gen_ai.response.id", spec.request_id)
    try:
        return await start_run(st, tenant, spec, root)
    except APIError as e:
        root.set_attribute("error.type", str(e.status))
        root.end()
        raise


async def start_run(st: GatewayState, tenant: Tenant, spec: RunSpec, root: Any) -> Run:
    try:  # the scheduler's own limits, before any side effect
        st.scheduler.validate(Request(spec.request_id, spec.prompt_ids, spec.sampling))
    except ValueError as e:
        raise bad_request(str(e)) from e
    st.acquire_slot(tenant.id)
    try:
        with st.tracer.start_as_current_span("budget.reserve", context=_ctx(root)) as span:
            res = await reserve(st, tenant, spec.plan.mode, len(spec.prompt_ids),
                                spec.sampling.max_tokens, span)  # fmt: skip
    except BaseException:
        st.release_slot()
        raise
    run = Run(st, tenant, res, spec, root)
    rp = routing_params(spec.plan, res.llm_allowed, res.max_llm_share)
    request = Request(spec.request_id, spec.prompt_ids, spec.sampling, rp)
    run.task = asyncio.create_task(run.main(request))
    st.runs.add(run)
    run.task.add_done_callback(lambda _: st.runs.discard(run))
    return run


class Run:
    def __init__(
        self, st: GatewayState, tenant: Tenant, res: Reservation, spec: RunSpec, root: Any
    ) -> None:
        self.st, self.tenant, self.reservation, self.spec, self.root = st, tenant, res, spec, root
        self.queue: asyncio.Queue[TokenEvent | BaseException] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.submitted = False  # handed to the engine (holds a batch seat)
        self.done = False  # ended: finished, aborted or failed
        self.cost = 0.0  # cost units settled (valid once the final event is out)
        self.tokens = TokenCounts()
        self.fallback_tokens = 0  # SLM tokens at positions the failed remote LLM was given
        # Resolved once the run holds a batch seat or has ended; a stream waits for it so
        # that a queue timeout can still be a 503 (``refusal``) instead of a 200.
        self.admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.refusal: APIError | None = None  # why the run ended before it was admitted

    @property
    def degraded(self) -> bool:
        return self.reservation.degraded

    def abort(self) -> None:
        """Idempotent; a queued run ends now, a running one at the scheduler's next step."""
        if self.done:
            return
        self.done = True
        if self.submitted:
            self.st.engine.abort(self.spec.request_id)
        elif self.task is not None:
            self.task.cancel()

    async def events(self) -> AsyncIterator[TokenEvent]:
        """The request's token events, ending with the one that has a finish_reason."""
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.finish_reason is not None:
                return

    async def main(self, request: Request) -> None:
        st = self.st
        queued = st.tracer.start_span("engine.queue", context=_ctx(self.root))
        left = st.settings.queue_timeout_s - (time.perf_counter() - self.spec.arrived)
        try:
            await asyncio.wait_for(st.seats.acquire(), timeout=max(left, 0.0))
        except (asyncio.CancelledError, TimeoutError) as e:  # nothing ran
            queued.end()
            if isinstance(e, TimeoutError):
                self.refusal = queue_timeout(st, self.tenant.id)
            await self._finish(None, self.refusal, {"slm": 0, "llm": 0, "fallback": 0})
            return
        queued.end()
        st.metrics.queue_time.labels(self.spec.plan.mode).observe(
            time.perf_counter() - self.spec.arrived
        )
        try:
            if self.done or st.closing:  # aborted at the last moment, or shutting down
                await self._finish(None, None, {"slm": 0, "llm": 0, "fallback": 0})
                return
            self.submitted = True
            st.submitted += 1
            self.admitted.set_result(None)
            renewal = asyncio.create_task(self._renew_hold())
            try:
                await self._pump(st.engine.submit(request))
            finally:
                renewal.cancel()
        finally:
            st.submitted -= self.submitted
            st.seats.release()

    async def _renew_hold(self) -> None:
        """Keep the budget hold alive while the request runs (a third of its TTL ahead
        of expiry); a crashed process stops renewing and the store expires the hold."""
        ttl = self.st.hold_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await self.st.store.renew(self.reservation, ttl)
            except Exception:  # the store is down: settle still charges a late hold once
                log.warning("renewing hold %s failed", self.reservation.id, exc_info=True)

    async def _pump(self, handle: AsyncIterator[TokenEvent]) -> None:
        st, spec, m = self.st, self.spec, self.st.metrics
        mode = spec.plan.mode
        first = last = 0.0
        counts = {"slm": 0, "llm": 0, "fallback": 0}
        final: TokenEvent | None = None
        error: BaseException | None = None
        phase = st.tracer.start_span("engine.prefill", context=_ctx(self.root))
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
                    counts["fallback"] += ev.fallback
                if ev.finish_reason == FINISH_ERROR:  # this request's work failed alone
                    final, error = ev, EngineError(ev.error or "unknown error")
                    log.error("request %s failed in the engine: %s", spec.request_id, ev.error)
                    break
                if ev.finish_reason is not None:
                    final = ev
                    break
                self.queue.put_nowait(ev)
        except Exception as e:  # the step thread itself failed: the stream ends with an error
            error = e
            log.exception("request %s failed in the engine", spec.request_id)
        finally:
            phase.end()
            await self._finish(final, error, counts)

    async def _finish(
        self, final: TokenEvent | None, error: BaseException | None, counts: dict[str, int]
    ) -> None:
        """Settle, release the queue slot, record, then hand the end to the response."""
        self.done = True
        if not self.admitted.done():
            self.admitted.set_result(None)
        stats = final.stats if final is not None else None
        self.tokens = billed_tokens(stats, len(self.spec.prompt_ids), counts["slm"], counts["llm"])
        self.fallback_tokens = stats.llm_fallback_tokens if stats else counts["fallback"]
        if isinstance(error, APIError):  # refused before it ran (queue timeout)
            outcome = "aborted"
        elif error is not None:
            outcome = "failed"
        elif final is None or final.finish_reason == FINISH_ABORT:
            outcome = "aborted"
        else:
            outcome = "completed"
        await self.settle(self.tokens, outcome)
        self.st.release_slot()
        self._observe(outcome, final, time.perf_counter())
        end = final or TokenEvent(self.spec.request_id, None, "", None, None, FINISH_ABORT)
        self.queue.put_nowait(error if error is not None else end)
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
        m.prompt_tokens.labels(mode).inc(len(self.spec.prompt_ids) if self.submitted else 0)
        m.generation_tokens.labels(mode).inc(completion)
        m.tokens_by_source.labels(mode, "slm").inc(t.slm_completion)
        m.tokens_by_source.labels(mode, "llm").inc(t.llm_completion)
        m.llm_fallback.labels(mode).inc(self.fallback_tokens)
        reason = final.finish_reason if final is not None else outcome
        attrs = {
            "gen_ai.usage.input_tokens": len(self.spec.prompt_ids),
            "gen_ai.usage.output_tokens": completion,
            "gen_ai.response.finish_reasons": [reason or outcome],
            "citer.slm_tokens": t.slm_completion,
            "citer.llm_tokens": t.llm_completion,
            "citer.llm_token_share": t.llm_share,
            "citer.cost": self.cost,
            "citer.outcome": outcome,
            "citer.degraded": self.degraded,
            "citer.llm_fallback_tokens": self.fallback_tokens,
        }
        self.root.set_attributes(attrs)
        self.root.end()

    async def _refresh_remaining(self) -> None:
        try:
            usage = await self.st.store.usage(self.tenant.id)
        except Exception:  # a metric only; the next request refreshes it
            return
        self.st.metrics.remaining.labels(self.tenant.id).set(usage.remaining)


def queue_timeout(st: GatewayState, tenant_id: str) -> APIError:
    st.metrics.rejected.labels(tenant_id, "queue_timeout").inc()
    retry = str(st.settings.retry_after_s)
    return APIError(
        503,
        f"The request waited {st.settings.queue_timeout_s:g} s for a batch seat without "
        f"getting one (CITER_QUEUE_TIMEOUT_S); its budget hold is released. Retry after "
        f"{retry} s.",
        "server_error",
        code="queue_timeout",
        headers={"Retry-After": retry, "x-should-retry": "true"},
    )


def _ctx(span: Any) -> Any:
    return trace.set_span_in_context(span)
