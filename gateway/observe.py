"""What one finished request leaves behind: Prometheus samples and its root span's
attributes (``record``), and the tenant's remaining-budget gauge."""

from __future__ import annotations

import time
from typing import Any

from engines.types import TokenEvent
from gateway.logs import request_done
from gateway.state import GatewayState


class Progress:
    """One request on its way: TTFT and inter-token samples, tokens by source, and
    its phase span (engine.queue, engine.prefill once it holds a batch slot,
    engine.decode from its first token; children of the root span)."""

    def __init__(self, st: GatewayState, mode: str, arrived: float, context: Any) -> None:
        self.st, self.mode, self.arrived, self.context = st, mode, arrived, context
        self.counts = {"slm": 0, "llm": 0, "fallback": 0}  # completion tokens seen
        self.first = self.last = 0.0  # time.perf_counter() of the first / latest token
        self.slot = 0.0  # time.perf_counter() when it got a batch slot (0: not yet)
        self.phase = "engine.queue"
        self.span = st.tracer.start_span(self.phase, context=context)

    def admitted(self) -> None:
        self.slot = self.slot or time.perf_counter()
        if self.phase == "engine.queue":  # the first token may have come first
            self._enter("engine.prefill")

    def token(self, ev: TokenEvent) -> None:
        now, m = time.perf_counter(), self.st.metrics
        if not self.first:
            self.first = now
            self.slot = self.slot or now  # the token came before the admission note
            m.ttft.labels(self.mode).observe(now - self.arrived)
            self._enter("engine.decode")
        else:
            m.itl.labels(self.mode).observe(now - self.last)
        self.last = now
        self.counts[ev.source or "slm"] += 1
        self.counts["fallback"] += ev.fallback

    def end(self) -> None:
        self.span.end()

    def _enter(self, phase: str) -> None:
        self.span.end()
        self.phase, self.span = phase, self.st.tracer.start_span(phase, context=self.context)


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
        _lengths(m, mode, run, completion)
    else:
        m.aborted.labels(mode, outcome).inc()
    m.prompt_tokens.labels(mode).inc(len(run.spec.prompt_ids) if run.admitted else 0)
    m.generation_tokens.labels(mode).inc(completion)
    m.tokens_by_source.labels(mode, "slm").inc(t.slm_completion)
    m.tokens_by_source.labels(mode, "llm").inc(t.llm_completion)
    m.llm_fallback.labels(mode).inc(run.fallback_tokens)
    m.forced.labels(mode).inc(run.forced_tokens)
    reason = final.finish_reason if final is not None else outcome
    run.root.set_attributes(
        {
            "gen_ai.response.model": run.spec.model,
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
            "citer.grammar_forced_tokens": run.forced_tokens,
            "citer.queue_s": stats.queue_s if stats is not None else 0.0,
        }
    )
    if run.spec.client_id is not None:
        run.root.set_attribute("citer.client_request_id", run.spec.client_id)
    run.root.end()
    request_done(st.settings.log_format == "json", {
        "request_id": run.spec.request_id, "client_request_id": run.spec.client_id,
        "tenant": run.tenant.id, "model": run.spec.model, "operation": run.spec.operation,
        "outcome": outcome, "finish_reason": reason, "prompt_tokens": len(run.spec.prompt_ids),
        "completion_tokens": completion, "llm_tokens": t.llm_completion,
        "llm_share": round(t.llm_share, 4), "cost": run.cost, "degraded": run.degraded,
        "latency_s": round(time.perf_counter() - run.spec.arrived, 4),
    })  # fmt: skip


def _lengths(m: Any, mode: str, run: Any, completion: int) -> None:
    """Per finished request: lengths, max_tokens, prefill / decode / per-token time."""
    m.prompt_len.labels(mode).observe(len(run.spec.prompt_ids))
    m.generation_len.labels(mode).observe(completion)
    m.max_tokens.labels(mode).observe(run.spec.sampling.max_tokens)
    p = run.progress
    if p.first:
        m.prefill_time.labels(mode).observe(p.first - p.slot)
        m.decode_time.labels(mode).observe(p.last - p.first)
        if completion > 1:
            m.tpot.labels(mode).observe((p.last - p.first) / (completion - 1))


async def refresh_remaining(st: GatewayState, tenant_id: str) -> None:
    try:
        usage = await st.store.usage(tenant_id)
    except Exception:  # a metric only; the next request refreshes it
        return
    st.metrics.remaining.labels(tenant_id).set(usage.remaining)
