"""Plot `citer bench` results: routed speed-up over LLM-only vs concurrency, before/after.

    python -m benchmarks.core_plot --after benchmarks/core.json \
        --before benchmarks/core-before.json --out benchmarks/core.png

Left: tokens/s of LLM-only and of each policy's best window at each concurrency
(deferral off). Right: that best row divided by LLM-only at the same concurrency and
window in the same run; the dotted line of the same colour is the after run's
cost-model bound for it, the grey line the 1.3x target. A "before" baseline that
collapses shows on the left, so its speed-ups on the right read in context.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def best_rows(rows: list[Row], policy: str) -> dict[int, Row]:
    """concurrency -> the policy's row with the best tokens/s over LLM-only (LLM-only:
    its fastest window), deferral off."""
    best: dict[int, Row] = {}
    for r in rows:
        if r["policy"] != policy or r.get("defer_steps", 0):
            continue
        score = r.get("speedup") or r["tokens_per_s"]
        c = int(r["concurrency"])
        if c not in best or score > (best[c].get("speedup") or best[c]["tokens_per_s"]):
            best[c] = r
    return dict(sorted(best.items()))


def plot(runs: dict[str, list[Row]], policies: list[str], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.serving_report import concurrency_axes, save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    concs: set[int] = set()
    for i, policy in enumerate(["llm", *policies]):
        for run, rows in runs.items():
            best = best_rows(rows, policy)
            if not best:
                continue
            xs = list(best)
            concs.update(xs)
            style, label = ("o-" if run == "after" else "s--"), f"{policy}, {run}"
            left.plot(
                xs, [r["tokens_per_s"] for r in best.values()], style, color=f"C{i}", label=label
            )
            if policy == "llm":
                continue
            right.plot(xs, [r["speedup"] for r in best.values()], style, color=f"C{i}", label=label)
            if run == "after":
                right.plot(
                    xs,
                    [r["bound"] for r in best.values()],
                    ":",
                    color=f"C{i}",
                    label=f"{policy}, cost-model bound",
                )
    right.axhline(1.3, color="grey", lw=1, label="target 1.3x")
    right.axhline(1.0, color="black", lw=0.6)
    for ax, ylabel in ((left, "tokens/s"), (right, "tokens/s over LLM-only (same window)")):
        concurrency_axes(ax, sorted(concs), ylabel)
        ax.legend(fontsize=7)
    left.set_title("Throughput, best window (citer bench, demo pair, 2-vCPU CPU)")
    right.set_title("Routed over LLM-only, in-process")
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--after", default="benchmarks/core.json")
    ap.add_argument("--before", default="", help="an earlier run's JSON to draw beside it")
    ap.add_argument("--policies", default="citer@0.2,confidence")
    ap.add_argument("--out", default="benchmarks/core.png")
    args = ap.parse_args(argv)
    runs = {"after": json.loads(Path(args.after).read_text())}
    if args.before:
        runs = {"before": json.loads(Path(args.before).read_text()), **runs}
    print(plot(runs, args.policies.split(","), Path(args.out)))


if __name__ == "__main__":
    main()
