"""Medians over several `citer bench` runs of the same configurations.

    python -m benchmarks.core_runs benchmarks/core.json run2.json run3.json \
        --policies llm,citer@0.2

One host drifts by 20-50% within minutes, so a single run's speed-up is a sample. Each
run's speed-up is already paired (routed over LLM-only at the same concurrency and
window, in the same run); this prints, per configuration, the median over runs of
tokens/s, of that speed-up and of its share of the cost-model bound, with the range,
beside the deterministic counts (LLM passes per token, LLM batch, SLM rows per token).
The last table is the best window per run (deferral off), then its median.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

Row = dict[str, Any]
Key = tuple[str, int, int, int, bool]  # policy, concurrency, window, defer steps, adaptive


def key(r: Row) -> Key:
    return (r["policy"], int(r["concurrency"]), int(r["window"]), int(r.get("defer_steps", 0)),
            bool(r.get("adaptive", False)))  # fmt: skip


def spread(xs: list[float], fmt: str, unit: str = "") -> str:
    """'median (min-max)' with the unit after each, or the one value."""
    if not xs:
        return ""
    med = format(statistics.median(xs), fmt) + unit
    lo, hi = format(min(xs), fmt) + unit, format(max(xs), fmt) + unit
    return med if lo == hi else f"{med} ({lo}-{hi})"


def of_bound(r: Row) -> float | None:
    return r["speedup"] / r["bound"] if r.get("speedup") and r.get("bound") else None


def table(runs: list[list[Row]], policies: list[str]) -> str:
    by: dict[Key, list[Row]] = {}
    for rows in runs:
        for r in rows:
            if r["policy"] in policies:
                by.setdefault(key(r), []).append(r)
    lines = [
        "| policy | c | k | defer | runs | tok/s | speed-up | of bound | LLM passes/tok | "
        "LLM batch | SLM rows/tok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in sorted(by, key=lambda k: (k[1], k[2], k[4], policies.index(k[0]), k[3])):
        rs = by[k]
        ups = [r["speedup"] for r in rs if r.get("speedup")]
        bounds = [b for r in rs if (b := of_bound(r)) is not None]
        first = rs[0]
        lines.append(
            f"| {k[0]} | {k[1]} | {k[2]}{'a' if k[4] else ''} | {k[3]} | {len(rs)} "
            f"| {spread([r['tokens_per_s'] for r in rs], '.0f')} "
            f"| {spread(ups, '.2f', 'x')} | {spread([100 * b for b in bounds], '.0f', '%')} "
            f"| {first['llm_passes_per_token']:.4f} | {first['llm_batch']:.1f} "
            f"| {first['slm_rows_per_token']:.2f} |"
        )
    return "\n".join(lines)


def best_table(runs: list[list[Row]], policies: list[str]) -> str:
    from benchmarks.core_plot import best_rows

    lines = ["| policy | c | best speed-up per run (window) | median |", "|---|---|---|---|"]
    for policy in policies:
        if policy == "llm":
            continue
        bests = [best_rows(rows, policy) for rows in runs]
        for c in sorted({c for b in bests for c in b}):
            picks = [b[c] for b in bests if c in b and b[c].get("speedup")]
            cells = ", ".join(f"{r['speedup']:.2f}x (k={r['window']})" for r in picks)
            med = statistics.median(r["speedup"] for r in picks) if picks else None
            lines.append(f"| {policy} | {c} | {cells} | {f'{med:.2f}x' if med else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="citer bench JSON files (--out)")
    ap.add_argument("--policies", default="llm,citer@0.2", help="comma-separated")
    args = ap.parse_args(argv)
    runs = [json.loads(p.read_text()) for p in args.runs]
    policies = args.policies.split(",")
    print(table(runs, policies))
    print()
    print(best_table(runs, policies))


if __name__ == "__main__":
    main()
