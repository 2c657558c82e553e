"""What one finished request leaves behind: Prometheus samples and its root span's
attributes (``record``), and the tenant's remaining-budget gauge."""

from __future__ import annotations

import time
from typing import Any

from engines.types import TokenEvent
from gateway.state import GatewayState


class Phases:
    """The request's phase span: engine.queue, then engine.prefill once it holds a batch
    slot, then engine.decode from its first token (children of the root span)."""

    def __init__(self, tracer: Any, context: Any) -> None:
        self.tracer, self.context = tracer, context
        self.name = "engine.queue"
        self.span = tracer.start_span(self.name, context=context)

    def enter(self, name: str) -> None:
        self.span.end()
        self.name, self.span = name, self.tracer.start_span(name, context=self.context)

    def end(self) -> None:
        self.span.end()


def record(st: GatewayState, run: Any, outcome: str, final: TokenEvent | None) -> None:
    """Metrics and span attributes of ``run`` (a gateway.runner.Run); ends its span."""
    m, mode, t = st.metrics, run.spec.plan.mode, run.tokens
    completion = t.slm_completion + t.llm_completion
    stats = final.stats if final is not None else None
    if stats is not None:  # the time it waited for a batch slot, got one or not
        m.queue_time.labels(mode).observe(stats.queue_s)
    if outcome == "completed" and final is not None:
        m.e2e.labels(mode).observe(time.perf_counter() - run.spec.arrived)
        m.success.labels(mode, final.finish_reason or "stop").inc()
        m.llm_share.labels(mode).observe(t.llm_share)
    else:
        m.aborted.labels(mode, outcome).inc()
    m.prompt_tokens.labels(mode).inc(len(run.spec.prompt_ids) if run.admitted else 0)
    m.generation_tokens.labels(mode).inc(completion)
    m.tokens_by_source.labels(mode, "slm").inc(t.slm_completion)
    m.tokens_by_source.labels(mode, "llm").inc(t.llm_completion)
    m.llm_fallback.labels(mode).inc(run.fallback_tokens)
    reason = final.finish_reason if final is not None else outcome
    run.root.set_attributes(
        {
            "gen_ai.usage.input_tokens": len(run.spec.prompt_ids),
            "gen_ai.usage.output_tokens": completion,
            "gen_ai.response.finish_reasons": [reason or outcome],
            "citer.slm_tokens": t.slm_completion,
            "citer.llm_tokens": t.llm_completion,
            "citer.llm_token_share": t.llm_share,
            "citer.cost": run.cost,
            "citer.outcome": outcome,
            "citer.degraded": run.degraded,
            "citer.llm_fallback_tokens": run.fallback_tokens,
            "citer.queue_s": stats.queue_s if stats is not None else 0.0,
        }
    )
    run.root.end()


async def refresh_remaining(st: GatewayState, tenant_id: str) -> None:
    try:
        usage = await st.store.usage(tenant_id)
    except Exception:  # a metric only; the next request refreshes it
        return
    st.metrics.remaining.labels(tenant_id).set(usage.remaining)
