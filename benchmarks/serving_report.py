"""Pure parts of the serving benchmark: statistics of a point, the markdown tables,
the BENCHMARKS.md section (replaced between its markers, the rest kept) and the plots.

Definitions (one place): tok/s = completion tokens of a point / its wall time; TTFT =
request sent -> first content chunk; ITL = per request (e2e - TTFT) / (tokens - 1),
vLLM's TPOT; p50/p90 over the requests of a point (linear interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gpu_projection import PublishedPair, Trace, project, share_bound
from benchmarks.serving_client import STEP_PARTS, Sample

BEGIN, END = "<!-- bench-serving:begin -->", "<!-- bench-serving:end -->"


@dataclass
class Point:
    engine: str  # "gateway" (citer, HF engines) or "vllm" (vllm serve)
    target: str  # model name sent: citer:0.2, slm, llm
    concurrency: int
    requests: int
    tokens: int
    wall_s: float
    tokens_per_s: float
    ttft_ms_p50: float
    ttft_ms_p90: float
    itl_ms_p50: float
    itl_ms_p90: float
    llm_share: float | None  # gateway usage: LLM-written / completion tokens
    router_pct: float | None  # router time / scheduler step time, %
    step_busy_pct: float | None  # scheduler step time / wall time, %
    overhead_ms_per_token: float | None  # c=1: (e2e - step time) / tokens, median
    host_ms_per_token: float | None  # c=1: overhead + (scheduler + router) step time
    # Summed over the server's processes, read right after the point (not sampled during
    # it: polling /proc while vLLM streamed held back its first token by ~0.3 s, BENCHMARKS).
    rss_mb: float
    pss_mb: float  # PSS: pages the processes share are split between them
    retries: int = 0  # requests retried after a connection error before any response
    # The point's routing trace (gateway /metrics deltas; None for vLLM), per token:
    llm_calls_per_token: float | None = None  # per-sequence LLM calls
    slm_forwards_per_token: float | None = None  # SLM-drafted positions
    round: int = 0  # which of the run's rounds (benchmarks.serving_rounds)


@dataclass
class Accuracy:
    engine: str
    target: str
    items: int
    correct: int
    tokens: int
    wall_s: float
    llm_share: float | None
    llm_calls_per_token: float | None
    slm_forwards_per_token: float | None

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else float("nan")


def pct(xs: Sequence[float], q: float) -> float:
    """q-quantile (0..1) with linear interpolation; nan for no data."""
    xs = sorted(x for x in xs if not math.isnan(x))
    if not xs:
        return float("nan")
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(
    engine: str, target: str, conc: int, samples: list[Sample], wall_s: float,
    d: dict[str, float], mem_mb: tuple[float, float],
) -> Point:  # fmt: skip
    """One point from its samples, the /metrics delta ``d`` (empty for vLLM) and the
    server's (RSS, PSS) in MiB after the point."""
    tokens = sum(s.tokens for s in samples)
    itl = [(s.e2e_s - s.ttft_s) / (s.tokens - 1) for s in samples if s.tokens > 1]
    ttft = [s.ttft_s for s in samples]
    llm = [s.llm_tokens for s in samples if s.llm_tokens is not None]
    share = sum(llm) / tokens if tokens and len(llm) == len(samples) else None
    step = sum(d.get(p + "_s", 0.0) for p in STEP_PARTS)
    over = [s.overhead_s / s.tokens for s in samples if s.overhead_s is not None and s.tokens]
    overhead = 1e3 * pct(over, 0.5) if over else None
    host = None
    if overhead is not None and tokens:
        host = overhead + 1e3 * (d["scheduler_s"] + d["router_s"]) / tokens
    return Point(
        engine, target, conc, len(samples), tokens, round(wall_s, 3),
        round(tokens / wall_s, 1) if wall_s > 0 else 0.0,
        round(1e3 * pct(ttft, 0.5), 1), round(1e3 * pct(ttft, 0.9), 1),
        round(1e3 * pct(itl, 0.5), 2), round(1e3 * pct(itl, 0.9), 2),
        None if share is None else round(share, 4),
        round(100 * d["router_s"] / step, 2) if step else None,
        round(100 * step / wall_s, 1) if step and wall_s > 0 else None,
        None if overhead is None else round(overhead, 3),
        None if host is None else round(host, 3),
        round(mem_mb[0], 1), round(mem_mb[1], 1), sum(s.retries for s in samples),
        round(d["llm_calls"] / tokens, 4) if "llm_calls" in d and tokens else None,
        round(d["drafts"] / tokens, 4) if "drafts" in d and tokens else None,
    )  # fmt: skip


def trace(acc: Accuracy, c1: Point | None) -> Trace:
    """The routing trace of one target for the batch-1 cost model: its c=1 point's
    (one sequence decoding: the batch the projection is for; the scheduler's window
    rule there differs from c=16's), else its accuracy pass's (c=16)."""
    if c1 is not None and c1.llm_calls_per_token is not None and c1.slm_forwards_per_token:
        return Trace(acc.target, c1.llm_share or 0.0, c1.llm_calls_per_token,
                     c1.slm_forwards_per_token, c1.host_ms_per_token)  # fmt: skip
    if acc.llm_calls_per_token is None or acc.slm_forwards_per_token is None:
        raise ValueError(f"{acc.target}: no scheduler counters (not a citer gateway)")
    host = c1.host_ms_per_token if c1 is not None else None
    return Trace(acc.target, acc.llm_share or 0.0, acc.llm_calls_per_token,
                 acc.slm_forwards_per_token, host)  # fmt: skip


def _f(x: float | None, fmt: str) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _name(engine: str) -> str:
    return {"gateway": "citer gateway (HF)", "vllm": "vllm serve"}.get(engine, engine)


def summary_table(points: list[Point], accs: list[Accuracy], concs: list[int]) -> str:
    """One row per (engine, target): accuracy beside throughput at every concurrency."""
    by = {(p.engine, p.target, p.concurrency): p for p in points}
    head = ["engine", "target", "accuracy", "LLM share", *[f"tok/s c={c}" for c in concs],
            "overhead ms/tok (c=1)", "router % of step (c=16)", "RSS (PSS) MiB"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in accs:
        row = [by.get((a.engine, a.target, c)) for c in concs]
        c1, c16 = by.get((a.engine, a.target, 1)), by.get((a.engine, a.target, 16))
        rss = max((p.rss_mb for p in row if p), default=None)
        pss = max((p.pss_mb for p in row if p), default=None)
        cells = [_name(a.engine), a.target, f"{a.accuracy:.3f} ({a.correct}/{a.items})",
                 _f(a.llm_share, ".3f"), *[_f(p.tokens_per_s if p else None, ".0f") for p in row],
                 _f(c1.overhead_ms_per_token if c1 else None, ".3f"),
                 _f(c16.router_pct if c16 else None, ".2f"),
                 f"{_f(rss, '.0f')} ({_f(pss, '.0f')})"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(points: list[Point]) -> str:
    head = ["engine", "target", "conc", "requests", "tok/s", "TTFT p50 ms", "TTFT p90 ms",
            "ITL p50 ms", "ITL p90 ms", "LLM share", "router % of step", "step busy %",
            "RSS (PSS) MiB"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in points:
        cells = [_name(p.engine), p.target, str(p.concurrency), str(p.requests),
                 f"{p.tokens_per_s:.0f}", f"{p.ttft_ms_p50:.0f}", f"{p.ttft_ms_p90:.0f}",
                 f"{p.itl_ms_p50:.2f}", f"{p.itl_ms_p90:.2f}", _f(p.llm_share, ".3f"),
                 _f(p.router_pct, ".2f"), _f(p.step_busy_pct, ".0f"),
                 f"{p.rss_mb:.0f} ({p.pss_mb:.0f})"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def projection_table(
    traces: list[Trace], accs: dict[str, float], pairs: Sequence[PublishedPair]
) -> str:
    """PROJECTION, not a measurement: the demo pair's traces x published GPU latencies."""
    head = ["pair (GPU)", "target", "acc (demo pair)", "LLM share", "LLM calls/tok",
            "SLM fwd/tok", "ms/tok", "speed-up", "share-only bound", "+ host ms/tok",
            "speed-up incl. host"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pair in pairs:
        for t, pr in zip(traces, project(traces, pair), strict=True):
            bound = share_bound(t.llm_share, pair) if t.target.startswith("citer") else None
            cells = [f"{pair.name} ({pair.gpu})", t.target, _f(accs.get(t.target), ".3f"),
                     f"{t.llm_share:.3f}", f"{t.llm_calls_per_token:.3f}",
                     f"{t.slm_forwards_per_token:.3f}", f"{pr.ms_per_token:.2f}",
                     f"{pr.speedup:.2f}x", _f(bound, ".2f"), _f(pr.ms_per_token_host, ".2f"),
                     "" if pr.speedup_host is None else f"{pr.speedup_host:.2f}x"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_section(doc: str, section: str) -> str:
    """``doc`` with the text between BEGIN and END replaced by ``section`` (markers
    kept); appended at the end when the markers are missing."""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    if BEGIN in doc and END in doc and doc.index(BEGIN) < doc.index(END):
        head, rest = doc.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return doc.rstrip("\n") + "\n\n" + block + "\n"


def plot(points: list[Point], out_dir: Path) -> list[Path]:
    """throughput.png (tok/s vs concurrency) and latency.png (TTFT and ITL, p50 solid,
    p90 dashed), one line per (engine, target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[Point]] = {}
    for p in points:
        series.setdefault(f"{_name(p.engine)}: {p.target}", []).append(p)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, ps in series.items():
        ax.plot([p.concurrency for p in ps], [p.tokens_per_s for p in ps], "o-", label=label)
    concs = sorted({p.concurrency for p in points})
    concurrency_axes(ax, concs, "completion tokens/s")
    ax.set_title("Throughput vs concurrency (2-vCPU CPU box, demo pair)")
    ax.legend(fontsize=7)
    paths = [out_dir / "throughput.png", out_dir / "latency.png"]
    save_figure(fig, paths[0])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (label, ps) in enumerate(series.items()):
        color = f"C{i}"
        xs = [p.concurrency for p in ps]
        for ax, key in zip(axes, ("ttft", "itl"), strict=True):
            ax.plot(xs, [getattr(p, f"{key}_ms_p50") for p in ps], "o-", color=color, label=label)
            ax.plot(xs, [getattr(p, f"{key}_ms_p90") for p in ps], "--", color=color)
    concurrency_axes(axes[0], concs, "TTFT ms (p50 solid, p90 dashed)", log_y=True)
    concurrency_axes(axes[1], concs, "inter-token latency ms (p50 solid, p90 dashed)", log_y=True)
    axes[0].set_title("Time to first token")
    axes[1].set_title("Inter-token latency (per request: (e2e - TTFT) / (tokens - 1))")
    axes[0].legend(fontsize=7)
    save_figure(fig, paths[1])
    return paths


def save_figure(fig: Any, out: Path) -> Path:
    """Lay out, write ``out`` (PNG, 110 dpi; its folder made) and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def concurrency_axes(ax: Any, concs: list[int], ylabel: str, log_y: bool = False) -> None:
    """A log2 concurrency x axis with plain tick labels, a y label and a grid."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log", base=2)
    ax.set_xticks(concs)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
