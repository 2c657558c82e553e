"""PNG of a sweep: accuracy vs LLM token share, one curve per policy."""

from __future__ import annotations

from pathlib import Path

from router_models.train.sweep import FIXED, Point, curve

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
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.axhline(llm, color="black", lw=1, ls="--", label=f"LLM only ({llm:.3f})")
    ax.axhline(llm - 0.01, color="black", lw=0.6, ls=":", label="LLM - 1 point")
    ax.axhline(slm, color="dimgray", lw=1, ls="-.", label=f"SLM only ({slm:.3f})")
    for name, pts in curves.items():
        if name in FIXED:
            continue
        xs, ys = zip(*curve(pts, slm, llm), strict=True)
        colour, marker = _STYLE.get(name, (None, "o"))
        dense = len(pts) > 12  # the query curve has one point per request
        ax.plot(xs, ys, label=name, color=colour, marker=None if dense else marker, ms=4, lw=1.4)
    ax.set_xlabel("LLM token share")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title or "accuracy vs LLM token share")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
