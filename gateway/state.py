"""Everything a request handler needs, built once in the lifespan (``app.state.citer``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from engines.async_engine import AsyncEngine
from engines.scheduler import Scheduler
from gateway.errors import APIError
from gateway.metrics import Metrics
from gateway.routing import RouterSetup
from gateway.settings import GatewaySettings
from gateway.tenancy import TenantStore


@dataclass
class GatewayState:
    settings: GatewaySettings
    scheduler: Scheduler
    engine: AsyncEngine
    tokenizer: Any  # the pair's shared HF tokenizer
    setup: RouterSetup
    store: TenantStore
    metrics: Metrics
    tracer: Any  # opentelemetry.trace.Tracer
    tracer_provider: Any
    max_prompt_tokens: int  # longest accepted prompt, in tokens
    max_token_chars: int  # characters the longest vocabulary entry spells (length bounds)
    hold_ttl_s: float  # a budget hold's life; running requests renew it
    # CITER_SPECULATIVE_MAX_BATCH=auto: the start-up timing that set the limit
    spec_probe: Any = None  # engines.spec_probe.SpecProbe | None
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0  # reserved and not yet settled (in the scheduler's queue or batch)
    closing: bool = False  # shutting down: new requests get 503
    runs: set[Any] = field(default_factory=set)  # live gateway.runner.Run objects

    @property
    def capacity(self) -> int:
        """Requests the gateway holds at once: a full batch plus the bounded queue."""
        return self.settings.max_batch + self.settings.max_queue

    def acquire_slot(self, tenant_id: str) -> None:
        """Take a capacity slot or refuse with 503 + Retry-After (no budget touched yet)."""
        if self.closing:
            raise APIError(503, "The server is shutting down.", "server_error",
                           code="shutting_down", headers={"x-should-retry": "true"})  # fmt: skip
        if self.in_flight >= self.capacity:
            raise self.unavailable(
                tenant_id, "queue_full", "server_overloaded",
                f"The server is at capacity ({self.capacity} requests running or queued).",
            )  # fmt: skip
        self.in_flight += 1

    def release_slot(self) -> None:
        self.in_flight -= 1

    def queue_timeout(self, tenant_id: str) -> APIError:
        """503 for a request that got no batch slot within CITER_QUEUE_TIMEOUT_S."""
        return self.unavailable(
            tenant_id, "queue_timeout", "queue_timeout",
            f"The request waited {self.settings.queue_timeout_s:g} s for a batch slot without "
            "getting one (CITER_QUEUE_TIMEOUT_S); its budget hold is released.",
        )  # fmt: skip

    def unavailable(self, tenant_id: str, reason: str, code: str, message: str) -> APIError:
        """A 503 the client should retry after CITER_RETRY_AFTER_S; counted by reason."""
        self.metrics.rejected.labels(tenant_id, reason).inc()
        retry = str(self.settings.retry_after_s)
        return APIError(
            503,
            f"{message} Retry after {retry} s.",
            "server_error",
            code=code,
            headers={"Retry-After": retry, "x-should-retry": "true"},
        )


def get_state(request: Request) -> GatewayState:
    return request.app.state.citer


State = Annotated[GatewayState, Depends(get_state)]  # handler parameter: the app's state
