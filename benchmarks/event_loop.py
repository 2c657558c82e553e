"""Event-loop stall under oversize prompts: /health latency while 10 ~960 KB prompts
(each refused with 400 for length) arrive at once.

    python -m benchmarks.event_loop [--runs 3] [--prompt-kb 960]

Starts a local gateway (loadtests/server.py: demo pair, embedded store), creates a
tenant, measures /health idle (20 calls), then polls /health every 20 ms while the
10 prompts are sent concurrently. Prints one row per run and the medians; run it
on an idle machine. A gateway that tokenizes request bodies on its event loop
stalls /health for seconds here.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import httpx


async def one_run(url: str, key: str, prompt_kb: int) -> dict[str, float]:
    big = {"model": "citer", "prompt": "a " * (prompt_kb * 512), "max_tokens": 2}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        idle = []
        for _ in range(20):
            t = time.perf_counter()
            await c.get("/health")
            idle.append(time.perf_counter() - t)
        polls: list[float] = []
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                t = time.perf_counter()
                await c.get("/health")
                polls.append(time.perf_counter() - t)
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(c.post("/v1/completions", json=big, headers=headers) for _ in range(10))
        )
        wall = time.perf_counter() - t0
        done.set()
        await poller
    if {r.status_code for r in answers} != {400}:
        raise RuntimeError(f"expected ten 400s, got {[r.status_code for r in answers]}")
    return {
        "refusals_s": wall,
        "health_idle_ms": 1e3 * statistics.median(idle),
        "health_max_ms": 1e3 * max(polls),
        "health_median_ms": 1e3 * statistics.median(polls),
    }


def main() -> None:
    from loadtests.server import local_gateway
    from loadtests.tenants import create_tenant

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompt-kb", type=int, default=960)
    ap.add_argument("--log", type=Path, default=Path("build/event_loop/gateway.log"))
    a = ap.parse_args()
    rows = []
    with local_gateway(a.log) as gw:
        with httpx.Client(
            base_url=gw.url, headers={"Authorization": f"Bearer {gw.admin_key}"}
        ) as c:
            key = create_tenant(c, "loop", 1e9, {}, "degrade")["key"]
        for i in range(a.runs):
            rows.append(asyncio.run(one_run(gw.url, key, a.prompt_kb)))
            r = rows[-1]
            print(f"run {i + 1}: 10 refusals {r['refusals_s']:.2f} s; /health idle "
                  f"{r['health_idle_ms']:.1f} ms, during: median {r['health_median_ms']:.1f} ms, "
                  f"max {r['health_max_ms']:.0f} ms")  # fmt: skip
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"median of {a.runs}: 10 refusals {med['refusals_s']:.2f} s, /health max "
          f"{med['health_max_ms']:.0f} ms (idle {med['health_idle_ms']:.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
