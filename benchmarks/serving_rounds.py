"""Rounds of the serving benchmark: every target again at each concurrency, paired.

This host's speed drifts by 20-50% within minutes, so a ratio of two points taken
minutes apart says little. With ``--rounds R`` each concurrency runs R rounds of every
target back to back (the order reversed every other round, so a steady drift hits the
targets alike), and a target is compared with LLM-only *of the same round*:

    ratio_r = tok/s(target, c, round r) / tok/s(llm, c, round r)
    bound_r = 1 / (s + (1 - s) t_slm / t_llm): the cost-model bound, s = the target's
              LLM share in round r, t = 1 / tok/s of slm and of llm in round r
    of_r    = ratio_r / bound_r

The tables quote the median over rounds of ratio_r and of_r (never a ratio of medians)
and the range. The other tables and the plots take, per (engine, target, c), the round
with the median tok/s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.gpu_projection import cost_bound
from benchmarks.serving_report import Point

BASELINE = "llm"


def order(targets: Sequence[str], round_no: int) -> list[str]:
    """The targets in the order round ``round_no`` runs them (reversed on odd rounds)."""
    return list(targets) if round_no % 2 == 0 else list(reversed(targets))


def median_points(points: Sequence[Point]) -> list[Point]:
    """One point per (engine, target, concurrency): the round with the median tok/s
    (the lower middle of an even count), in the order the keys first appear."""
    groups: dict[tuple[str, str, int], list[Point]] = {}
    for p in points:
        groups.setdefault((p.engine, p.target, p.concurrency), []).append(p)
    out = []
    for ps in groups.values():
        ranked = sorted(ps, key=lambda p: p.tokens_per_s)
        out.append(ranked[(len(ranked) - 1) // 2])
    return out


@dataclass
class Paired:
    engine: str
    target: str
    concurrency: int
    tok_s: list[float]  # per paired round: the target's tok/s
    base_tok_s: list[float]  # per paired round: LLM-only's tok/s
    of_bound: list[float]  # per round: ratio / the cost-model bound (rounds with slm and a share)

    @property
    def ratios(self) -> list[float]:
        """Per paired round: the target's tok/s over LLM-only's."""
        return [t / b for t, b in zip(self.tok_s, self.base_tok_s, strict=True)]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def of_bound_median(self) -> float | None:
        return statistics.median(self.of_bound) if self.of_bound else None


def bound(share: float, slm_tok_s: float, llm_tok_s: float) -> float:
    """The cost-model bound from measured tok/s (t = 1 / tok/s)."""
    return cost_bound(share, llm_tok_s / slm_tok_s)


def paired(points: Sequence[Point]) -> list[Paired]:
    """Per (engine, routed target, concurrency): the per-round ratios to LLM-only."""
    by = {(p.engine, p.target, p.concurrency, p.round): p for p in points}
    out: dict[tuple[str, str, int], Paired] = {}
    for (engine, target, conc, rnd), p in sorted(by.items(), key=lambda kv: kv[0][3]):
        base = by.get((engine, BASELINE, conc, rnd))
        if target in (BASELINE, "slm") or base is None or not base.tokens_per_s:
            continue
        key = (engine, target, conc)
        pr = out.setdefault(key, Paired(engine, target, conc, [], [], []))
        ratio = p.tokens_per_s / base.tokens_per_s
        pr.tok_s.append(p.tokens_per_s)
        pr.base_tok_s.append(base.tokens_per_s)
        slm = by.get((engine, "slm", conc, rnd))
        if slm is not None and slm.tokens_per_s and p.llm_share is not None:
            pr.of_bound.append(ratio / bound(p.llm_share, slm.tokens_per_s, base.tokens_per_s))
    return sorted(out.values(), key=lambda r: (r.engine, r.target, r.concurrency))


def rounds_table(points: Sequence[Point]) -> str:
    """Markdown: each routed target against LLM-only of the same round."""
    head = ["target", "conc", "rounds", "tok/s (rounds)", "LLM-only tok/s (rounds)",
            "over LLM-only (rounds)", "median", "of the bound (median)"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pr in paired(points):
        of = pr.of_bound_median
        cells = [pr.target, str(pr.concurrency), str(len(pr.ratios)), _join(pr.tok_s, ".0f"),
                 _join(pr.base_tok_s, ".0f"), _join(pr.ratios, ".2f"),
                 f"**{pr.median:.2f}x** ({min(pr.ratios):.2f}-{max(pr.ratios):.2f})",
                 "" if of is None else f"{of:.0%}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _join(xs: list[float], fmt: str) -> str:
    return ", ".join(format(x, fmt) for x in xs)
