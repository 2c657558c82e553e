"""One configuration's result in ``citer bench`` and the Markdown table of a run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    policy: str
    threshold: float
    concurrency: int
    window: int
    n: int
    tokens: int
    wall_s: float
    tokens_per_s: float
    itl_ms: float | None  # median over requests of (t_last - t_first) / (tokens - 1)
    ttft_ms: float | None  # median time to first committed token (None: no request had)
    llm_share: float
    router_share: float  # router time / step time
    accuracy: float
    bound: float | None = None  # cost-model speed-up bound over llm-only
    speedup: float | None = None  # measured tokens/s over llm-only
    engine: str = "hf"
    defer_steps: int = 0  # deferred LLM batching (0: off)
    llm_passes_per_token: float = 0.0  # batched LLM engine calls / generated tokens
    llm_batch: float = 0.0  # mean sequences per LLM pass
    slm_rows_per_token: float = 0.0  # SLM draft rows (forwards per sequence) / generated tokens
    adaptive: bool = False  # adaptive run-ahead per sequence ran (k > 1, batch small enough)
    # Where a generated token's time goes (ms per token, summed over steps): SLM passes,
    # router calls, LLM passes, and the scheduler's own bookkeeping (plan, commit, detok)
    ms_tok: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    llm_agreed: float = 0.0  # of the LLM's tokens, those equal to the SLM's draft there
    verify: bool = True  # one LLM pass verified every routed position of a window


def table(rows: list[Row]) -> str:
    # k: window, "a" adaptive run-ahead ran, "nv" one routed position per LLM pass
    head = ("| engine | policy | thr | conc | k | defer | tok/s | ITL ms | TTFT ms | LLM share "
            "| LLM passes/tok | LLM batch | SLM rows/tok | router % | acc | speed-up | bound "
            "| of bound | ms/tok: SLM / router / LLM / sched | LLM agreed |")  # fmt: skip
    lines = [head, "|" + "---|" * 20]
    for r in rows:
        of = f"{r.speedup / r.bound:.0%}" if r.bound and r.speedup else ""
        lines.append(
            f"| {r.engine} | {r.policy} | {r.threshold:.3g} | {r.concurrency} | "
            f"{r.window}{'a' if r.adaptive else ''}{'' if r.verify else ' nv'} | "
            f"{r.defer_steps} | {r.tokens_per_s:.0f} | {_num(r.itl_ms, '.1f')} | "
            f"{_num(r.ttft_ms, '.0f')} | "
            f"{r.llm_share:.3f} | {r.llm_passes_per_token:.3f} | {r.llm_batch:.1f} | "
            f"{r.slm_rows_per_token:.2f} | {100 * r.router_share:.2f} | {r.accuracy:.3f} | "
            f"{r.speedup or ''} | {r.bound or ''} | {of} | {' / '.join(map(str, r.ms_tok))} | "
            f"{r.llm_agreed:.2f} |"
        )
    return "\n".join(lines)


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)
