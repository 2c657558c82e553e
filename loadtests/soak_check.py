"""What a soak run must leave behind, checked from the gateway's own introspection.

Inputs are plain data, so the checks are testable without a gateway:
  Snapshot  /metrics gauges (running, waiting, in flight, live KV caches, RSS,
            the gateway's spend counter per tenant) + each tenant's admin usage
  Ledger    what the clients of one tenant saw: the settled cost of every answer
            they read to its usage chunk, and for the streams they abandoned a
            floor and a ceiling of each one's cost

A client that disconnects never sees its request's cost, so per tenant:
    unseen = spent - (sum of settled costs the clients saw)
must be 0 when no stream was abandoned and otherwise lie within the sums of the
abandoned streams' floors and worst cases. The store must also agree with itself
(spent == its billed token counts x prices) and with the gateway's spend counter.
Costs are settled in micro-units, so sums agree to 1e-6 per request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MIB = 2**20


@dataclass
class Ledger:
    """One tenant's requests as its clients saw them (costs in cost units)."""

    granted: int = 0  # answered 200 (a reservation was made)
    refused: int = 0  # answered anything else
    errors: int = 0  # streams that carried an error event
    seen: int = 0  # read to the usage chunk
    seen_cost: float = 0.0  # sum of usage.cost of those
    abandoned: int = 0  # closed by the client before the usage chunk
    abandoned_chunks: int = 0  # content chunks those streams delivered
    abandoned_floor: float = 0.0  # sum of what they cost at least (see soak.Load.one)
    abandoned_worst: float = 0.0  # sum of their worst-case costs
    hostile: int = 0  # hostile bodies sent (not counted in granted / refused)
    hostile_not_400: int = 0  # of those, answered anything but 400

    def answered(self, cost: float) -> None:
        """An answer read to its usage chunk, which carries the settled cost."""
        self.seen += 1
        self.seen_cost += cost


@dataclass
class Snapshot:
    running: float  # vllm:num_requests_running
    waiting: float  # vllm:num_requests_waiting
    in_flight: float  # citer:requests_in_flight: admitted and not yet settled
    kv_slm: float  # citer:kv_cache_sequences{model="slm"}
    kv_llm: float
    rss_bytes: float  # process_resident_memory_bytes
    aborted: float  # citer:requests_aborted_total, all modes and outcomes
    spend_metric: dict[str, float] = field(default_factory=dict)  # citer:budget_spend_total
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)  # admin usage per tenant


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_idle(after: Snapshot) -> list[Check]:
    """No request running, waiting or unsettled; no KV cache left allocated."""
    return [
        Check(f"{name} == 0", value == 0, f"{value:g}")
        for name, value in (
            ("running requests", after.running),
            ("waiting requests", after.waiting),
            ("requests in flight", after.in_flight),
            ("SLM KV caches", after.kv_slm),
            ("LLM KV caches", after.kv_llm),
        )
    ]


def check_rss(before: Snapshot, after: Snapshot, margin_mb: float) -> Check:
    grown = (after.rss_bytes - before.rss_bytes) / MIB
    detail = f"{before.rss_bytes / MIB:.1f} -> {after.rss_bytes / MIB:.1f} MiB ({grown:+.1f})"
    return Check(f"RSS back within {margin_mb:g} MiB of baseline", grown <= margin_mb, detail)


def check_tenant(
    tid: str, ledger: Ledger, usage: dict[str, Any], spend_metric: float, prices: dict[str, float]
) -> list[Check]:
    """``prices``: the tenant's, cost units per 1k tokens of each kind."""
    req, spent = usage["requests"], usage["spent"]
    eps = 1e-6 * (req["granted"] + 1)  # micro-unit rounding, once per settlement
    unseen = spent - ledger.seen_cost
    if ledger.abandoned:
        ok = ledger.abandoned_floor - eps <= unseen <= ledger.abandoned_worst + eps
        cost = (
            f"unseen {unseen:.6f} in [{ledger.abandoned_floor:.6f}, {ledger.abandoned_worst:.6f}]"
        )
    else:
        ok, cost = abs(unseen) <= eps, f"spent {spent:.6f} == seen {ledger.seen_cost:.6f}"
    billed = sum(n * prices[kind] for kind, n in usage["tokens"].items()) / 1000
    settled = req["completed"] + req["aborted"]
    return [
        Check(
            f"{tid}: nothing reserved or active",
            usage["reserved"] == 0 and usage["active_requests"] == 0,
            f"reserved {usage['reserved']:g}, active {usage['active_requests']}",
        ),
        Check(
            f"{tid}: granted == client 200s, no refusal or error event",
            req["granted"] == ledger.granted and ledger.refused == ledger.errors == 0,
            f"{req['granted']} vs {ledger.granted} (refused {ledger.refused}, "
            f"errors {ledger.errors})",
        ),
        Check(
            f"{tid}: every request settled once, none failed",
            settled == req["granted"] and req["failed"] == 0 and req["completed"] >= ledger.seen,
            f"completed {req['completed']} + aborted {req['aborted']}, failed {req['failed']}",
        ),
        Check(
            f"{tid}: hostile bodies all refused with 400",
            ledger.hostile_not_400 == 0,
            f"{ledger.hostile - ledger.hostile_not_400} of {ledger.hostile}",
        ),
        Check(f"{tid}: spent == settled costs the clients saw", ok, cost),
        Check(
            f"{tid}: spent == billed tokens x prices",
            abs(billed - spent) <= eps,
            f"{billed:.6f} vs {spent:.6f}",
        ),
        Check(
            f"{tid}: /metrics spend == store spend",
            abs(spend_metric - spent) <= eps,
            f"{spend_metric:.6f} vs {spent:.6f}",
        ),
    ]


def evaluate(
    before: Snapshot,
    after: Snapshot,
    ledgers: dict[str, Ledger],
    prices: dict[str, float],
    rss_margin_mb: float,
) -> list[Check]:
    """Every check; ``prices`` are the soak tenants' (all the same)."""
    checks = [*check_idle(after), check_rss(before, after, rss_margin_mb)]
    for tid, ledger in ledgers.items():
        spend = after.spend_metric.get(tid, 0.0)
        checks += check_tenant(tid, ledger, after.usage[tid], spend, prices)
    return checks


def table(before: Snapshot, after: Snapshot) -> str:
    """Before/after figures, one line each."""
    rows = [
        ("running requests", before.running, after.running),
        ("waiting requests", before.waiting, after.waiting),
        ("requests in flight", before.in_flight, after.in_flight),
        ("SLM KV caches", before.kv_slm, after.kv_slm),
        ("LLM KV caches", before.kv_llm, after.kv_llm),
        ("RSS MiB", before.rss_bytes / MIB, after.rss_bytes / MIB),
        ("requests aborted (total)", before.aborted, after.aborted),
    ]
    for tid in sorted(after.usage):
        b, a = before.usage.get(tid), after.usage[tid]
        rows.append((f"{tid} spent", b["spent"] if b else 0.0, a["spent"]))
        rows.append(
            (f"{tid} requests", b["requests"]["granted"] if b else 0, a["requests"]["granted"])
        )
    lines = [f"{'':34} {'before':>14} {'after':>14}"]
    lines += [f"{name:34} {b:14.6g} {a:14.6g}" for name, b, a in rows]
    return "\n".join(lines)


def report(
    before: Snapshot,
    after: Snapshot,
    ledgers: dict[str, Ledger],
    checks: list[Check],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The JSON written to build/soak/."""
    return {
        "ok": all(c.ok for c in checks),
        "settings": settings,
        "before": asdict(before),
        "after": asdict(after),
        "ledgers": {t: asdict(led) for t, led in ledgers.items()},
        "checks": [asdict(c) for c in checks],
    }
