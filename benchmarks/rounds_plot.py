"""Plot the paired rounds of several serving runs: routed over LLM-only per round.

    python -m benchmarks.rounds_plot --out benchmarks/serving/rounds/rounds.png \\
        before=benchmarks/serving/rounds/before.json eager=... compiled=...

One panel per routed target; per run, each round's ratio to the LLM-only point of the
same round as a dot and the median as a bar, at each concurrency; the grey line is
the 1.3x target. Input: serving.json files written by ``benchmarks.serving --rounds``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.serving_report import Point, concurrency_axes, save_figure
from benchmarks.serving_rounds import paired

TARGET = 1.3  # the speed-up the scheduling work aims at, every concurrency


def load(path: Path) -> list[Point]:
    return [Point(**p) for p in json.loads(path.read_text())["points"]]


def plot(runs: dict[str, list[Point]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = sorted({pr.target for pts in runs.values() for pr in paired(pts)})
    fig, axes = plt.subplots(1, len(targets), figsize=(6.4 * len(targets), 4.2), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        concs: set[int] = set()
        for i, (label, pts) in enumerate(runs.items()):
            rows = [pr for pr in paired(pts) if pr.target == target]
            shift = 2 ** ((i - (len(runs) - 1) / 2) * 0.12)  # side by side on the log axis
            for pr in rows:
                concs.add(pr.concurrency)
                x = pr.concurrency * shift
                ax.scatter([x] * len(pr.ratios), pr.ratios, s=12, color=f"C{i}", alpha=0.5)
                ax.hlines(pr.median, x / 1.08, x * 1.08, color=f"C{i}", lw=2.5)
            ax.plot([], [], "o", color=f"C{i}", label=f"{label} (bar: median)")
        ax.axhline(TARGET, color="grey", ls="--", lw=1, label=f"{TARGET}x target")
        ax.axhline(1.0, color="black", lw=0.6)
        concurrency_axes(ax, sorted(concs), f"{target} tok/s / LLM-only tok/s, same round")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="label=serving.json, in the legend's order")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="Routed over LLM-only, paired rounds (demo pair, HTTP)")
    args = ap.parse_args(argv)
    runs = {}
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep or not path:
            ap.error(f"{spec!r}: expected label=path")
        runs[label] = load(Path(path))
    print(plot(runs, Path(args.out), args.title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
