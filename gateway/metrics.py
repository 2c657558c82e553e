"""Prometheus metrics of one gateway, in its own registry (no process globals).

Names shared with vLLM keep its ``vllm:`` prefix and ``model_name`` label so
existing dashboards work unchanged; the rest are ``citer:``. The label
``model_name`` is the routing mode (citer, slm, llm), never the free-form
model string, so label cardinality stays bounded.

Scheduler state (running/waiting requests, step time by part, KV caches) is read at
scrape time by the collectors in ``gateway.metrics_collect``. The standard
``process_*`` metrics (resident memory, CPU seconds, open fds) come from
prometheus_client's process collector, so a soak run can compare RSS before/after.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from gateway.metrics_collect import SchedulerCollector, TenantSums

# Latency buckets (seconds) as in vLLM's histograms.
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
    0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
    0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
E2E_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0,
    15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
)  # fmt: skip
SHARE_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Token counts per request: 1-2-5 steps, as vLLM's length histograms.
LENGTH_BUCKETS = tuple(m * 10**e for e in range(6) for m in (1, 2, 5))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, mode = self.registry, ["model_name"]
        ProcessCollector(registry=r)  # process_resident_memory_bytes & co. (Linux /proc)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time to first token.",
            mode,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Time between consecutive tokens of a request as the gateway receives them. "
            "Tokens committed in one scheduler step (an SLM run-ahead) arrive together, so "
            "many samples are ~0; vllm:request_time_per_output_token_seconds is the "
            "per-request mean.",
            mode,
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "vllm:request_queue_time_seconds",
            "Time from arrival to a batch seat in the engine.",
            mode,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Request latency.",
            mode,
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.prefill_time = Histogram(
            "vllm:request_prefill_time_seconds",
            "Time from a batch slot to the first token (prefill), per request.",
            mode,
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.decode_time = Histogram(
            "vllm:request_decode_time_seconds",
            "Time from the first token to the last (decode), per request.",
            mode,
            buckets=E2E_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "vllm:request_time_per_output_token_seconds",
            "Decode time / (completion tokens - 1), per request with two or more tokens.",
            mode,
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.prompt_len = Histogram(
            "vllm:request_prompt_tokens",
            "Prompt tokens per finished request.",
            mode,
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.generation_len = Histogram(
            "vllm:request_generation_tokens",
            "Completion tokens per finished request.",
            mode,
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.max_tokens = Histogram(
            "vllm:request_params_max_tokens",
            "The max_tokens a finished request ran with (after defaults and the context).",
            mode,
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prefilled prompt tokens.", mode, registry=r
        )
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Generated tokens.", mode, registry=r
        )
        self.success = Counter(
            "vllm:request_success",
            "Finished requests by reason.",
            [*mode, "finished_reason"],
            registry=r,
        )
        self.tokens_by_source = Counter(
            "citer:completion_tokens",
            "Completion tokens by the model that wrote them.",
            [*mode, "source"],
            registry=r,
        )
        self.llm_share = Histogram(
            "citer:llm_token_share",
            "LLM-written / all completion tokens, per request.",
            mode,
            buckets=SHARE_BUCKETS,
            registry=r,
        )
        # Per-tenant series (tenant ids, spend, budgets) need a credential to read; an
        # unauthenticated scrape gets the same families summed over tenants.
        self.tenant_registry = t = CollectorRegistry(auto_describe=True)
        self.spend = Counter("citer:budget_spend", "Cost units settled.", ["tenant"], registry=t)
        self.remaining = Gauge(
            "citer:budget_remaining",
            "Cost units left in the current period.",
            ["tenant"],
            registry=t,
        )
        self.rejected = Counter(
            "citer:requests_rejected",
            "Refused requests by reason.",
            ["tenant", "reason"],
            registry=t,
        )
        self.degraded = Counter(
            "citer:requests_degraded",
            "Requests served by the SLM alone for budget.",
            ["tenant"],
            registry=t,
        )
        self.aggregate_registry = CollectorRegistry(auto_describe=False)
        self.aggregate_registry.register(TenantSums(self.tenant_registry))
        self.llm_fallback = Counter(
            "citer:llm_fallback_tokens",
            "Tokens routed to the LLM that the SLM wrote because the remote LLM failed.",
            mode,
            registry=r,
        )
        self.forced = Counter(
            "citer:grammar_forced_tokens",
            "Completion tokens a grammar (response_format, tools) allowed alone: never routed.",
            mode,
            registry=r,
        )
        self.aborted = Counter(
            "citer:requests_aborted",
            "Requests ended by a client disconnect or failure.",
            [*mode, "outcome"],
            registry=r,
        )

        self.client_closed = Counter(
            "citer:requests_client_closed",
            "Requests whose client disconnected before the request body was read.",
            registry=r,
        )

    def watch(self, scheduler: Any, gateway: Any) -> None:
        self.registry.register(SchedulerCollector(scheduler, gateway))

    def render(self, per_tenant: bool = False) -> bytes:
        """The exposition text; per-tenant series only when ``per_tenant``."""
        extra = self.tenant_registry if per_tenant else self.aggregate_registry
        return generate_latest(self.registry) + generate_latest(extra)
