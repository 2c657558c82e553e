"""PNG of a sweep: accuracy vs LLM token share, one curve per policy.

Left: the whole share axis; right: a zoom on 0-35%, where routers differ.
Re-render a saved report without decoding again:
``python -m router_models.train.plot benchmarks/router-sweep/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from router_models.train.sweep import FIXED, Point, curve, points_from_json

_STYLE = {  # policy -> (colour, marker); unknown policies get matplotlib's cycle
    "citer": ("tab:red", "o"),
    "citer_round1": ("tab:orange", "s"),
    "citer_s": ("tab:brown", "^"),
    "confidence": ("tab:blue", "v"),
    "entropy": ("tab:cyan", "<"),
    "random": ("tab:gray", "x"),
    "query": ("tab:green", "."),
}


def plot_sweep(curves: dict[str, list[Point]], path: str | Path, title: str = "") -> Path:
    """Write the plot; returns its path. Uses the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slm, llm = curves["slm"][0].accuracy, curves["llm"][0].accuracy
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for ax, right in zip(axes, (1.0, 0.35), strict=True):
        ax.axhline(llm, color="black", lw=1, ls="--", label=f"LLM only ({llm:.3f})")
        ax.axhline(llm - 0.01, color="black", lw=0.6, ls=":", label="LLM - 1 point")
        ax.axhline(slm, color="dimgray", lw=1, ls="-.", label=f"SLM only ({slm:.3f})")
        for name, pts in curves.items():
            if name in FIXED:
                continue
            xs, ys = zip(*curve(pts, slm, llm), strict=True)
            colour, marker = _STYLE.get(name, (None, "o"))
            dense = len(pts) > 12  # the query curve has one point per request
            ax.plot(
                xs, ys, label=name, color=colour, marker=None if dense else marker, ms=4, lw=1.4
            )
        ax.set_xlabel("LLM token share")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, right)
        ax.grid(alpha=0.3)
    axes[0].set_title(title or "accuracy vs LLM token share")
    axes[1].set_title("zoom: LLM token share 0-35%")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="re-render a sweep.json as PNG")
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, help="PNG path (default: next to the report)")
    args = ap.parse_args(argv)
    rep = json.loads(args.report.read_text(encoding="utf-8"))
    title = f"{rep['split']} split, n={rep['n']}, window {rep['window']}"
    out = plot_sweep(points_from_json(rep), args.out or args.report.with_suffix(".png"), title)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
