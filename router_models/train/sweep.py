"""Sweep report: accuracy vs LLM token share per policy, and its summary numbers.

    routed runs (one Point per policy x threshold) --curve--> PGR(share)
      --> APGR, call-performance thresholds, accuracy at fixed shares --> table / JSON

Definitions (RouteLLM's, on the LLM token share axis):
  PGR(s)  = (acc(s) - acc_SLM) / (acc_LLM - acc_SLM), the recovered part of the gap.
  curve   = the policy's points sorted by measured share, joined linearly, closed
            with the SLM-only point at share 0 and the LLM-only point at share 1
            (the limits of every threshold sweep). A fixed policy (slm, llm) has
            one point and a constant curve: APGR(slm) = 0, APGR(llm) = 1.
  APGR    = integral of PGR over share in [0, 1] (trapezoids).
  CPT(p)  = smallest share at which the curve reaches PGR >= p (None if never).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FIXED = ("slm", "llm")  # single-point policies


@dataclass
class Point:
    policy: str
    threshold: float | None
    target_share: float | None  # the share the threshold was calibrated for, if any
    llm_share: float  # measured: LLM-written / all completion tokens, in [0, 1]
    accuracy: float
    wall_s: float
    flops: float  # estimated forward FLOPs of the run (both models)
    n: int  # items
    # Per item (kept for composing the query-level curve; not written to JSON):
    correct: list[bool] = field(default_factory=list, repr=False)
    tokens: list[int] = field(default_factory=list, repr=False)
    item_flops: list[float] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("correct", "tokens", "item_flops"):
            d.pop(k)
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in d.items()}


def points_from_json(report: dict[str, Any]) -> dict[str, list[Point]]:
    """The curves of a saved sweep report (per-item fields stay empty)."""
    return {k: [Point(**p) for p in pts] for k, pts in report["points"].items()}


def pgr(acc: float, slm: float, llm: float) -> float | None:
    gap = llm - slm
    return None if gap <= 0 else (acc - slm) / gap


def curve(points: Sequence[Point], slm: float, llm: float) -> list[tuple[float, float]]:
    """(share, accuracy) from share 0 to 1; see the module docstring."""
    if len(points) == 1 and points[0].policy in FIXED:
        a = points[0].accuracy
        return [(0.0, a), (1.0, a)]
    inner = sorted((p.llm_share, p.accuracy) for p in points if 0.0 < p.llm_share < 1.0)
    return [(0.0, slm), *inner, (1.0, llm)]


def interp(xy: Sequence[tuple[float, float]], x: float) -> float:
    for (x0, y0), (x1, y1) in zip(xy, xy[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise ValueError(f"share {x} outside the curve's range")


def apgr(points: Sequence[Point], slm: float, llm: float) -> float | None:
    if llm - slm <= 0:
        return None
    xy = curve(points, slm, llm)
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(xy, xy[1:], strict=False))
    return (area - slm) / (llm - slm)  # the share axis has length 1


def cpt(points: Sequence[Point], slm: float, llm: float, frac: float) -> float | None:
    """Call-performance threshold: least LLM share reaching PGR >= frac (linear in between)."""
    if llm - slm <= 0:
        return None
    goal = slm + frac * (llm - slm)
    xy = curve(points, slm, llm)
    if xy[0][1] >= goal:
        return xy[0][0]
    for (x0, y0), (x1, y1) in zip(xy, xy[1:], strict=False):
        if y1 >= goal > y0:
            return x0 + (goal - y0) * (x1 - x0) / (y1 - y0)
    return None


def query_curve(
    scores: Sequence[float], slm: Point, llm: Point, policy: str = "query"
) -> list[Point]:
    """Exact curve of a per-request router from the SLM-only and LLM-only runs.

    A request scoring above the threshold is decoded by the LLM alone, so its
    tokens, correctness and FLOPs are those of the LLM-only run (likewise for
    the SLM); one point per distinct threshold, wall time apportioned by item.
    """
    n = len(scores)
    if not (n == slm.n == llm.n == len(slm.correct) == len(llm.correct)):
        raise ValueError("query curve needs per-item results of both single-model runs")
    ths = sorted(set(scores))
    out = []
    for th in [min(ths) - 1.0, *ths]:
        routed = [s > th for s in scores]
        llm_tok = sum(t for t, r in zip(llm.tokens, routed, strict=True) if r)
        slm_tok = sum(t for t, r in zip(slm.tokens, routed, strict=True) if not r)
        ok = [lc if r else sc for lc, sc, r in zip(llm.correct, slm.correct, routed, strict=True)]
        fl = [
            lf if r else sf
            for lf, sf, r in zip(llm.item_flops, slm.item_flops, routed, strict=True)
        ]
        k = sum(routed)
        out.append(
            Point(
                policy,
                th,
                None,
                llm_tok / max(1, llm_tok + slm_tok),
                sum(ok) / n,
                (k * llm.wall_s + (n - k) * slm.wall_s) / n,
                sum(fl),
                n,
            )
        )
    return out


def summarize(curves: dict[str, list[Point]], shares: Sequence[float] = (0.1, 0.2, 0.3)) -> dict:
    """Per policy: APGR, CPT(50/80/95%), accuracy at ``shares``, mean wall time of one run
    (composed for the query router), FLOPs per item at 20% share."""
    slm, llm = curves["slm"][0].accuracy, curves["llm"][0].accuracy
    rows = {}
    for name, pts in curves.items():
        xy = curve(pts, slm, llm)
        n = max(p.n for p in pts)
        fl = curve_flops(pts, curves)
        rows[name] = {
            "apgr": _r(apgr(pts, slm, llm)),
            "cpt": {f"{int(f * 100)}": _r(cpt(pts, slm, llm, f)) for f in (0.5, 0.8, 0.95)},
            "accuracy_at": {f"{s:.2f}": _r(interp(xy, s)) for s in shares},
            "wall_s": round(sum(p.wall_s for p in pts) / len(pts), 2),  # mean per run
            "gflop_per_item_at_20": _r(interp(fl, 0.2) / n / 1e9),
            "points": len(pts),
        }
    return rows


def curve_flops(pts: Sequence[Point], curves: dict[str, list[Point]]) -> list[tuple[float, float]]:
    """(share, FLOPs) joined like ``curve``, closed with the single-model runs."""
    if len(pts) == 1 and pts[0].policy in FIXED:
        return [(0.0, pts[0].flops), (1.0, pts[0].flops)]
    inner = sorted((p.llm_share, p.flops) for p in pts if 0.0 < p.llm_share < 1.0)
    return [(0.0, curves["slm"][0].flops), *inner, (1.0, curves["llm"][0].flops)]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table of ``summarize``'s rows (None printed as '-': never reached)."""

    def f(x: float | None, pct: bool = False) -> str:
        return "-" if x is None else (f"{100 * x:.1f}%" if pct else f"{x:.3f}")

    head = (
        "| policy | APGR | CPT50 | CPT80 | CPT95 | acc@10% | acc@20% | acc@30% "
        "| wall s/run | GFLOP/item @20% |"
    )
    lines = [head, "|" + "---|" * 10]
    for name, r in rows.items():
        c, a = r["cpt"], list(r["accuracy_at"].values())
        lines.append(
            f"| {name} | {f(r['apgr'])} | {f(c['50'], True)} | {f(c['80'], True)} "
            f"| {f(c['95'], True)} | {f(a[0])} | {f(a[1])} | {f(a[2])} | {r['wall_s']:.0f} "
            f"| {f(r['gflop_per_item_at_20'])} |"
        )
    return "\n".join(lines)
