"""Prometheus metrics of one gateway, in its own registry (no process globals).

Names shared with vLLM keep its ``vllm:`` prefix and ``model_name`` label so
existing dashboards work unchanged; the rest are ``citer:``. The label
``model_name`` is the routing mode (citer, slm, llm), never the free-form
model string, so label cardinality stays bounded.

Scheduler state (running/waiting sequences, step time by part, live KV caches)
is read at scrape time by a collector; the step thread owns those objects and
the reads are single attribute loads, safe under the GIL. The standard
``process_*`` metrics (resident memory, CPU seconds, open fds) come from
prometheus_client's process collector, so a soak run can compare RSS before/after.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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


class SchedulerCollector(Collector):
    """Gauges and counters read from the live scheduler and engines at scrape time."""

    def __init__(self, scheduler: Any, gateway: Any) -> None:
        self.sched = scheduler
        self.gateway = gateway  # has .in_flight

    def collect(self) -> Iterator[Metric]:
        s = self.sched
        running = GaugeMetricFamily(
            "vllm:num_requests_running", "Requests decoding in the batch.", labels=["model_name"]
        )
        running.add_metric(["citer"], len(s.running))
        yield running
        waiting = GaugeMetricFamily(
            "vllm:num_requests_waiting", "Requests queued for the batch.", labels=["model_name"]
        )
        waiting.add_metric(["citer"], s.num_waiting())
        yield waiting
        caches = GaugeMetricFamily(
            "citer:kv_cache_sequences", "Live per-sequence KV caches.", labels=["model"]
        )
        caches.add_metric(["slm"], s.slm.num_caches())
        caches.add_metric(["llm"], s.llm.num_caches())
        yield caches
        yield GaugeMetricFamily(
            "citer:requests_in_flight",
            "Requests admitted by the gateway and not yet settled.",
            value=self.gateway.in_flight,
        )
        t = s.totals
        step = CounterMetricFamily(
            "citer:step_seconds", "Scheduler step wall time by part.", labels=["part"]
        )
        for part, v in (
            ("slm", t.slm_s),
            ("router", t.router_s),
            ("llm", t.llm_s),
            ("scheduler", t.sched_s),
        ):
            step.add_metric([part], v)
        yield step  # router time: citer:step_seconds_total{part="router"}
        # Routing trace (benchmarks/serving.py feeds its GPU cost model with these).
        for name, doc, v in (
            ("citer:scheduler_steps", "Scheduler steps that decoded anything.", t.steps),
            ("citer:slm_draft_tokens", "Positions the SLM drafted (= SLM forward passes "
             "per sequence, each scored by the router).", t.drafted),
            ("citer:llm_calls", "Per-sequence LLM calls (catch-up + the routed token).",
             t.llm_calls),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=v)
        if s.llm.info.fallible:  # the remote LLM engine: its calls and the circuit
            yield from remote_metrics(s.llm.stats, s.llm.circuit_open)


def remote_metrics(st: Any, circuit_open: bool) -> Iterator[Metric]:
    """Counters of ``engines.remote_client.RemoteStats``."""
    calls = CounterMetricFamily(
        "citer:remote_llm_calls",
        "LLM calls to the remote LLM by outcome (ok, timeout, unreachable, circuit_open, ...).",
        labels=["outcome"],
    )
    calls.add_metric(["ok"], st.ok)
    for reason, n in sorted(st.failed.items()):
        calls.add_metric([reason], n)
    yield calls
    sent = CounterMetricFamily(
        "citer:remote_llm_bytes", "HTTP bytes to and from the remote LLM.", labels=["direction"]
    )
    sent.add_metric(["sent"], st.bytes_sent)
    sent.add_metric(["received"], st.bytes_received)
    yield sent
    yield CounterMetricFamily(
        "citer:remote_llm_ok_call_seconds",
        "Summed wall time of successful remote LLM calls (retries included).",
        value=st.ok_seconds,
    )
    yield GaugeMetricFamily(
        "citer:remote_llm_circuit_open",
        "1 while LLM calls are skipped after failures (the SLM writes those tokens).",
        value=float(circuit_open),
    )


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
            "Time between tokens.",
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


class TenantSums(Collector):
    """The tenant registry's counters summed over the ``tenant`` label (gauges such
    as a tenant's remaining budget have no meaningful sum and are left out)."""

    def __init__(self, tenants: CollectorRegistry) -> None:
        self.tenants = tenants

    def collect(self) -> Iterator[Metric]:
        for family in self.tenants.collect():
            if family.type != "counter":
                continue
            sums: dict[tuple[tuple[str, str], ...], float] = {}
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue  # the _created timestamps
                key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "tenant"))
                sums[key] = sums.get(key, 0.0) + sample.value
            names = sorted({k for key in sums for k, _ in key})
            out = CounterMetricFamily(
                family.name, family.documentation + " (all tenants)", labels=names
            )
            for key, value in sums.items():
                out.add_metric([dict(key)[n] for n in names], value)
            yield out
