"""Load test of a running gateway: TTFT and the gateway's own overhead per token.

    python -m loadtests.latency --url http://127.0.0.1:8000 --key-file .citer/api-key

For each concurrency level it streams task-suite chat prompts (greedy) and
measures on the client: time to first content token (TTFT), inter-token
latency and tokens/s. At concurrency 1 it also measures the gateway's overhead
per token: each request's end-to-end time minus the scheduler step time spent
meanwhile (``citer:step_seconds_total`` from /metrics, read before and after),
divided by its completion tokens. That is the time in HTTP, JSON, SSE framing,
auth, budgets and hand-offs to and from the step thread, i.e. everything but
model compute and scheduling. Loopback traffic only; bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from loadtests.common import public_metrics


@dataclass
class Level:
    concurrency: int
    requests: int
    tokens: int
    wall_s: float
    tokens_per_s: float
    ttft_ms_p50: float
    ttft_ms_p90: float
    itl_ms_p50: float  # median over requests of the mean time between content chunks
    overhead_ms_per_token: float | None = None  # measured at concurrency 1 only


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _stream_one(
    client: httpx.AsyncClient, body: dict
) -> tuple[float, list[float], int, float]:
    """(ttft s, token arrival times, completion tokens, e2e s) of one streamed request."""
    t0 = time.perf_counter()
    ttft, arrivals, tokens = float("nan"), [], 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode()[:300]}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                if choice["delta"].get("content"):
                    now = time.perf_counter()
                    arrivals.append(now)
                    if ttft != ttft:  # first content
                        ttft = now - t0
    return ttft, arrivals, tokens, time.perf_counter() - t0


async def _step_seconds(client: httpx.AsyncClient) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = await public_metrics(client)
    for fam in text_string_to_metric_families(text):
        if fam.name == "citer:step_seconds":
            return sum(s.value for s in fam.samples if s.name.endswith("_total"))
    raise RuntimeError("/metrics has no citer:step_seconds_total")


async def run_level(
    client: httpx.AsyncClient, prompts: list[list[dict]], conc: int, max_tokens: int, model: str
) -> Level:
    bodies = [
        {
            "model": model,
            "messages": m,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for m in prompts
    ]
    sem = asyncio.Semaphore(conc)
    overheads: list[float] = []

    async def one(body: dict) -> tuple[float, list[float], int, float]:
        async with sem:
            before = await _step_seconds(client) if conc == 1 else 0.0
            out = await _stream_one(client, body)
            if conc == 1 and out[2]:
                overheads.append((out[3] - (await _step_seconds(client) - before)) / out[2])
            return out

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(b) for b in bodies))
    wall = time.perf_counter() - t0
    ttfts = [r[0] for r in results]
    # Tokens of one step arrive together, so per-gap ITL is mostly ~0: take each
    # request's mean gap (last - first) / (chunks - 1), like vLLM's TPOT.
    itls = [(r[1][-1] - r[1][0]) / (len(r[1]) - 1) for r in results if len(r[1]) > 1]
    tokens = sum(r[2] for r in results)
    return Level(
        conc,
        len(bodies),
        tokens,
        round(wall, 3),
        round(tokens / wall, 1),
        round(1e3 * _pct(ttfts, 0.5), 1),
        round(1e3 * _pct(ttfts, 0.9), 1),
        round(1e3 * _pct(itls, 0.5), 2),
        round(1e3 * statistics.median(overheads), 3) if overheads else None,
    )


async def main_async(args: argparse.Namespace) -> list[Level]:
    from tasks.splits import load_split

    key = args.key or Path(args.key_file).read_text().strip()
    prompts = [it.messages for it in load_split("test", args.requests)]
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=256)
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, timeout=600, limits=limits
    ) as client:
        await run_level(client, prompts[:2], 1, 4, args.model)  # warm-up
        levels = [int(c) for c in args.concurrency.split(",")]
        return [await run_level(client, prompts, c, args.max_tokens, args.model) for c in levels]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--key", help="API key (default: read --key-file)")
    ap.add_argument("--key-file", default=".citer/api-key")
    ap.add_argument("--model", default="citer")
    ap.add_argument("--requests", type=int, default=32, help="requests per level (<= 1000)")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--out", help="write the rows as JSON")
    args = ap.parse_args()
    if not 1 <= args.requests <= 1000:
        ap.error("--requests must be within [1, 1000]")
    rows = asyncio.run(main_async(args))
    for r in rows:
        print(json.dumps(asdict(r)))
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")


if __name__ == "__main__":
    main()
