"""Prometheus collectors read at scrape time: the live scheduler, engines and runs, the
remote LLM client, and the per-tenant counters summed over tenants.

The step thread owns the scheduler and engines; the reads here are single attribute
loads or copies that tolerate a concurrent change (a scrape never blocks a step).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.routing import MODES  # the model_name label: the routing mode


class SchedulerCollector(Collector):
    """Gauges and counters read from the live scheduler, engines and runs at scrape time."""

    def __init__(self, scheduler: Any, gateway: Any) -> None:
        self.sched = scheduler
        self.gateway = gateway  # GatewayState: .in_flight, .runs

    def collect(self) -> Iterator[Metric]:
        s = self.sched
        yield from run_states(list(self.gateway.runs))
        caches = GaugeMetricFamily(
            "citer:kv_cache_sequences", "Live per-sequence KV caches.", labels=["model"]
        )
        caches.add_metric(["slm"], s.slm.num_caches())
        caches.add_metric(["llm"], s.llm.num_caches())
        yield caches
        yield from kv_usage({"slm": s.slm, "llm": s.llm})
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
            ("citer:speculative_drafts_checked", "Drafts of speculative requests the LLM "
             "checked.", t.spec_checked),
            ("citer:speculative_drafts_kept", "Drafts of speculative requests the LLM kept "
             "(its token there equal to the draft).", t.spec_kept),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=v)
        yield GaugeMetricFamily(
            "citer:speculative_max_batch",
            "Speculative requests draft while at most this many sequences run (now).",
            value=s.draft_gate.limit(),
        )
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


def run_states(runs: list[Any]) -> Iterator[Metric]:
    """Requests decoding (they hold a batch slot) and queued, by served model."""
    running = {m: 0 for m in MODES}
    waiting = dict(running)
    for run in runs:
        if not run.done:
            (running if run.admitted else waiting)[run.spec.plan.mode] += 1
    for name, doc, counts in (
        ("vllm:num_requests_running", "Requests decoding in the batch.", running),
        ("vllm:num_requests_waiting", "Requests queued for the batch.", waiting),
    ):
        family = GaugeMetricFamily(name, doc, labels=["model_name"])
        for mode, n in counts.items():
            family.add_metric([mode], n)
        yield family


def kv_usage(engines: dict[str, Any]) -> Iterator[Metric]:
    """KV memory of the engines that own a pool (hf): the fraction of its allocated
    positions that live sequences hold, and its bytes. The pool grows on demand (doubling;
    or is reserved at start, CITER_KV_RESERVE_TOKENS) and is kept while idle, so usage is
    of what is allocated, not of a fixed budget."""
    usage = GaugeMetricFamily(
        "citer:kv_cache_usage_perc",
        "Fraction of the allocated KV cache positions holding live tokens (0-1), by model.",
        labels=["model"],
    )
    size = GaugeMetricFamily("citer:kv_cache_bytes", "Allocated KV cache bytes.", labels=["model"])
    for name, engine in engines.items():
        stats = getattr(engine, "kv_usage", None)
        if stats is None:
            continue
        live, allocated, nbytes = stats()
        usage.add_metric([name], live / allocated if allocated else 0.0)
        size.add_metric([name], nbytes)
    yield usage
    yield size


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
