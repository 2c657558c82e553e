"""The real pair's accuracy tables, APGR / CPT per router and a plot, from the cache.

    rows of the cache for this pair --> per (dataset, config): accuracy, LLM token share,
        PGR = (acc - SLM's) / (LLM's - SLM's) on the items all three decoded,
        paired bootstrap 95% interval of (acc - LLM's) on the items both decoded
    per (dataset, router): the curve (0, 0), its (share, PGR) points, (1, 1) -->
        APGR = area under it (trapezoids; the stretch past the last point is the straight
        line to the LLM alone, so a router measured only at low shares is credited the
        chord), CPT(x) = the first LLM share at which the curve reaches PGR x

Only configs decoded on at least as many items as the LLM alone make the curves (older,
smaller runs stay in the table). APGR and CPT follow RouteLLM's definitions (Ong et al.
2024), with the cost axis the LLM token share instead of the share of calls.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

BOOT = 2000  # paired bootstrap resamples
ORDER = (
    "slm",
    "llm",
    "random",
    "confidence",
    "entropy",
    "confidence-class",
    "citer-s",
    "citer-s-r2r",
    "citer",
    "citer-class-all",
    "citer-class",
    "citer-csqa",
    "citer-csqa-h",
    "citer-h",
)


def card_digest(card: Path) -> str:
    import hashlib

    return hashlib.sha256((card / "router.safetensors").read_bytes()).hexdigest()[:8]


def load_cache(path: Path) -> dict[tuple, dict]:
    done: dict[tuple, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[(r["pair"], r["dataset"], r["config"], r["max_tokens"], r["id"])] = r
    return done


def paired_interval(a: list[bool], b: list[bool], seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(a) - mean(b) over paired items (percentage points)."""
    rng, n = random.Random(seed), len(a)
    diffs = sorted(
        sum(a[i] - b[i] for i in (rng.randrange(n) for _ in range(n))) / n for _ in range(BOOT)
    )
    return 100 * diffs[int(0.025 * BOOT)], 100 * diffs[int(0.975 * BOOT) - 1]


def pgr_of(got: dict[str, dict], slm: dict[str, dict], llm: dict[str, dict]) -> float | None:
    """Performance gap recovered on the items all three decoded; None without a gap."""
    both = set(got) & set(slm) & set(llm)
    acc = {k: sum(d[i]["correct"] for i in both) for k, d in (("x", got), ("s", slm), ("l", llm))}
    if not both or acc["l"] == acc["s"]:
        return None
    return (acc["x"] - acc["s"]) / (acc["l"] - acc["s"])


def curve(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(share, PGR) points sorted by share, with the SLM (0, 0) and the LLM (1, 1) added."""
    return [(0.0, 0.0), *sorted(p for p in points if 0.0 < p[0] < 1.0), (1.0, 1.0)]


def apgr(points: list[tuple[float, float]]) -> float:
    c = curve(points)
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(c, c[1:], strict=False))


def cpt(points: list[tuple[float, float]], target: float) -> float:
    """The least LLM share at which the piecewise-linear curve reaches PGR ``target``."""
    c = curve(points)
    for (x0, y0), (x1, y1) in zip(c, c[1:], strict=False):
        if y0 >= target:
            return x0
        if y1 >= target:
            return x0 + (x1 - x0) * (target - y0) / (y1 - y0)
    return 1.0


def display(config: str, names: dict[str, str]) -> str | None:
    """``citer@<digest>:t`` -> ``citer:t`` / ``citer-s:t`` for the cards asked about;
    None for another card's runs (never mixed in)."""
    head, _, thr = config.partition(":")
    if head.startswith("citer@"):
        name = names.get(head.removeprefix("citer@"))
        return None if name is None else f"{name}:{thr}"
    return config


def family(shown: str) -> str:
    return shown.partition(":")[0]


def collect(rows: list[dict], names: dict[str, str]) -> dict[str, dict[str, dict[str, dict]]]:
    """dataset -> shown config -> item id -> row."""
    by: dict[str, dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        shown = display(r["config"], names)
        if shown is not None:
            by[r["dataset"]][shown][r["id"]] = r
    return by


def stats(got: dict[str, dict], slm: dict, llm: dict, shown: str) -> dict[str, Any]:
    n = len(got)
    share = sum(r["llm_tokens"] for r in got.values()) / max(
        1, sum(r["tokens"] for r in got.values())
    )
    both = sorted(set(got) & set(llm))
    ci = None
    if shown != "llm" and len(both) >= 10:
        ci = paired_interval([got[i]["correct"] for i in both], [llm[i]["correct"] for i in both])
    return {"n": n, "acc": 100 * sum(r["correct"] for r in got.values()) / n, "share": share,
            "pgr": pgr_of(got, slm, llm), "ci": ci, "paired": len(both),
            "cut": sum(r.get("finish") == "length" for r in got.values())}  # fmt: skip


def tables(by: dict[str, dict[str, dict[str, dict]]]) -> tuple[str, dict]:
    """The per-config table (markdown), the APGR table, and the curves for the plot."""
    lines = ["| dataset | config | items | accuracy | LLM token share | PGR | cut at max_tokens "
             "| vs LLM (95% CI, points) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    curves: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for name in sorted(by):
        configs = by[name]
        slm, llm = configs.get("slm", {}), configs.get("llm", {})
        curves[name] = defaultdict(list)
        key = lambda c: (ORDER.index(family(c)) if family(c) in ORDER else 99, c)  # noqa: E731
        for shown in sorted(configs, key=key):
            s = stats(configs[shown], slm, llm, shown)
            lo_hi = s["ci"]
            ci = "-" if lo_hi is None else f"[{lo_hi[0]:+.1f}, {lo_hi[1]:+.1f}] on {s['paired']}"
            pgr = "-" if s["pgr"] is None else f"{s['pgr']:.2f}"
            lines.append(f"| {name} | {shown} | {s['n']} | {s['acc']:.1f}% | "
                         f"{100 * s['share']:.1f}% | {pgr} | {s['cut']} | {ci} |")  # fmt: skip
            if shown not in ("slm", "llm") and s["pgr"] is not None and s["n"] >= len(llm):
                curves[name][family(shown)].append((s["share"], s["pgr"], s["acc"]))
    lines += ["", "| dataset | router | points | APGR | CPT(50%) | CPT(80%) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, fams in curves.items():
        for fam in sorted(fams, key=lambda f: ORDER.index(f) if f in ORDER else 99):
            pts = [(x, y) for x, y, _ in fams[fam]]
            lines.append(f"| {name} | {fam} | {len(pts)} | {apgr(pts):.3f} | "
                         f"{100 * cpt(pts, 0.5):.1f}% | {100 * cpt(pts, 0.8):.1f}% |")  # fmt: skip
    return "\n".join(lines), curves


def plot(by: dict, curves: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.serving_report import save_figure

    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.5), squeeze=False)
    for ax, (name, fams) in zip(axes[0], sorted(curves.items()), strict=True):
        for ref, style in (("slm", ":"), ("llm", "--")):
            got = by[name].get(ref)
            if got:
                acc = 100 * sum(r["correct"] for r in got.values()) / len(got)
                ax.axhline(acc, ls=style, c="gray", label=f"{ref} alone ({len(got)} items)")
        for fam in sorted(fams, key=lambda f: ORDER.index(f) if f in ORDER else 99):
            pts = sorted(fams[fam])
            ax.plot([100 * x for x, _, _ in pts], [a for _, _, a in pts], "o-", label=fam)
        ax.set(title=name, xlabel="LLM token share (%)", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Qwen2.5-Coder 0.5B / 1.5B: accuracy vs LLM token share (test items)")
    save_figure(fig, out)


def names_file(cache: Path) -> Path:
    """Where the card names of ``cache`` are recorded: ``<cache>-cards.json`` beside it."""
    return cache.with_name(f"{cache.stem}-cards.json")


def card_names(cards: dict[str, Path], known: Path) -> dict[str, str]:
    """Card digest -> config name: the cards on disk, plus the ones recorded in ``known``
    when earlier runs used them, so a card built under build/ (never committed) keeps its
    rows in the table on a clean checkout. A name whose card on disk has other weights
    drops its recorded digest: a retrained card's old rows are never mixed in."""
    names: dict[str, str] = json.loads(known.read_text()) if known.is_file() else {}
    here = {card_digest(p): n for n, p in cards.items() if (p / "router.safetensors").is_file()}
    names = {d: n for d, n in names.items() if n not in here.values()} | here
    known.write_text(json.dumps(names, indent=1, sort_keys=True) + "\n")
    return names


def write_report(args: argparse.Namespace, pair: str, cards: dict[str, Path]) -> str:
    """Tables for every config cached for ``pair``; writes the .md beside the cache + plot
    and the card names beside it (``<cache>-cards.json``)."""
    cache = Path(args.cache)
    names = card_names(cards, names_file(cache))
    rows = [r for r in load_cache(cache).values() if r["pair"] == pair]
    by = collect(rows, names)
    table, curves = tables(by)
    cache.with_suffix(".md").write_text(table + "\n")
    if curves and args.plot:
        plot(by, curves, Path(args.plot))
    return table
