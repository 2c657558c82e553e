"""One admitted request's life in the gateway, written once (admission: gateway.admission).

    Run.main (a task of its own, independent of the client connection)
        renew the budget hold every TTL/3 while the request lives
        pump    TokenEvents -> the response's queue (TTFT/ITL metrics on the way)
        finish  on the final event, whatever it is (finish, abort, error, queue
                timeout, shutdown): bill what the engines processed, settle once,
                record, then release the final event to the response
    Run.abort()   client gone: the scheduler drops it within one step (queued or not)
    Run.started   set once it holds a batch slot or has ended: a stream waits for it
                  before its 200, so a queue timeout is still a 503

Invariant: every reservation is settled exactly once and every capacity slot released
exactly once, whatever the client does; only a crashed process leaves a hold, which
the store expires after its TTL (or an admin releases: /admin/tenants/{id}/holds).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from engines.async_engine import RequestHandle
from engines.types import FINISH_ABORT, FINISH_ERROR, FINISH_TIMEOUT, SamplingParams, TokenEvent
from gateway.budget import billed_tokens, outcome, renew_hold, settle
from gateway.errors import APIError
from gateway.observe import Progress, record, refresh_remaining
from gateway.routing import RoutePlan
from gateway.state import GatewayState
from gateway.tenancy import Reservation, Tenant, TokenCounts

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
    grammar: str | None = None  # llguidance grammar of the completion (structured output)
    client_id: str | None = None  # the caller's X-Request-ID, if it sent one (logs, spans)


class Run:
    def __init__(
        self,
        st: GatewayState,
        tenant: Tenant,
        res: Reservation,
        spec: RunSpec,
        root: Any,
        handle: RequestHandle,
    ) -> None:
        self.st, self.tenant, self.reservation, self.spec = st, tenant, res, spec
        self.root, self.handle = root, handle
        self.queue: asyncio.Queue[TokenEvent | BaseException] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.done = False  # ended: finished, aborted or failed
        self.cost = 0.0  # cost units settled (valid once the final event is out)
        self.tokens = TokenCounts()
        self.fallback_tokens = 0  # SLM tokens at positions the failed remote LLM was given
        self.forced_tokens = 0  # completion tokens the grammar allowed alone
        self.rate_headers: dict[str, str] = {}  # x-ratelimit-* of the tenant's limits
        self.started = asyncio.Event()  # holds a batch slot, or ended (see ``refusal``)
        self.refusal: APIError | None = None  # why it ended before it got a batch slot
        self.progress = Progress(st, spec.plan.mode, spec.arrived, span_context(root))

    @property
    def degraded(self) -> bool:
        return self.reservation.degraded

    @property
    def admitted(self) -> bool:
        """It got a batch slot (so its prompt was prefilled)."""
        return self.handle.admitted.is_set()

    def abort(self) -> None:
        """Idempotent; the run ends within one scheduler step, queued or running."""
        if not self.done:
            self.st.engine.abort(self.spec.request_id)

    async def events(self) -> AsyncIterator[TokenEvent]:
        """The request's token events, ending with the one that has a finish_reason."""
        async for batch in self.batches():
            for ev in batch:
                yield ev

    async def batches(self) -> AsyncIterator[list[TokenEvent]]:
        """The events in batches of all that had arrived (a scheduler step's tokens
        arrive together), in order, ending with the one that has a finish_reason; an
        error is raised after the events queued before it."""
        while True:
            batch: list[TokenEvent] = []
            item = await self.queue.get()
            while True:
                if isinstance(item, BaseException):
                    if batch:
                        yield batch
                    raise item
                batch.append(item)
                if item.finish_reason is not None:
                    yield batch
                    return
                if self.queue.empty():
                    break
                item = self.queue.get_nowait()
            yield batch

    async def main(self) -> None:
        renewal = asyncio.create_task(renew_hold(self.st, self.reservation))
        admission = asyncio.create_task(self._note_admission())
        final: TokenEvent | None = None
        error: BaseException | None = None
        try:
            final, error = await self._pump()
        except Exception as e:  # the step thread itself failed: the stream ends with an error
            error = e
            log.exception("request %s failed in the engine", self.spec.request_id)
        finally:
            renewal.cancel()
            admission.cancel()
            self.progress.end()
            await self._finish(final, error)

    async def _pump(self) -> tuple[TokenEvent, BaseException | None]:
        """Forward events until the final one; (it, the error it carries or None)."""
        async for ev in self.handle:
            if ev.token_id is not None:
                self.progress.token(ev)
            if ev.finish_reason == FINISH_ERROR:  # this request's work failed alone
                log.error("request %s failed in the engine: %s", self.spec.request_id, ev.error)
                return ev, EngineError(ev.error or "unknown error")
            if ev.finish_reason == FINISH_TIMEOUT:
                self.refusal = self.st.queue_timeout(self.tenant.id)
                return ev, self.refusal
            if ev.finish_reason is not None:
                return ev, None
            self.queue.put_nowait(ev)
        raise RuntimeError(f"request {self.spec.request_id} ended without a final event")

    async def _note_admission(self) -> None:
        await self.handle.admitted.wait()
        self.progress.admitted()
        self.started.set()

    async def _finish(self, final: TokenEvent | None, error: BaseException | None) -> None:
        """Settle, release the capacity slot, record, then hand the end to the response."""
        self.done = True
        stats, seen = (final.stats if final else None), self.progress.counts
        self.tokens = billed_tokens(stats, len(self.spec.prompt_ids), seen["slm"], seen["llm"])
        self.fallback_tokens = stats.llm_fallback_tokens if stats else seen["fallback"]
        self.forced_tokens = stats.forced_tokens if stats else 0
        how = outcome(final, error)
        self.cost = await settle(self.st, self.tenant, self.reservation, self.tokens, how,
                                 span_context(self.root))  # fmt: skip
        self.st.release_slot()
        record(self.st, self, how, final)
        end = final or TokenEvent(self.spec.request_id, None, "", None, None, FINISH_ABORT)
        self.queue.put_nowait(error if error is not None else end)
        self.started.set()  # after ``refusal``: a waiting stream answers with it
        await refresh_remaining(self.st, self.tenant.id)


def span_context(span: Any) -> Any:
    return trace.set_span_in_context(span)
