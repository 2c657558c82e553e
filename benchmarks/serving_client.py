"""HTTP side of the serving benchmark: streamed chat requests, /metrics counters, RSS.

Works against any OpenAI-compatible server (the citer gateway, ``vllm serve``); the
scheduler counters exist only on the gateway, where ``scrape`` returns them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.common import content_of, public_metrics, sse_data

# /metrics counters of the citer gateway -> short keys (seconds or counts).
STEP_PARTS = ("slm", "router", "llm", "scheduler")
COUNTERS = {
    "citer:scheduler_steps": "steps",
    "citer:slm_draft_tokens": "drafts",
    "citer:llm_calls": "llm_calls",
}


@dataclass
class Sample:
    """One streamed request, as the client saw it."""

    ttft_s: float  # request sent -> first content chunk
    e2e_s: float  # request sent -> stream closed
    tokens: int  # completion tokens (usage)
    text: str
    llm_tokens: int | None = None  # gateway usage only
    overhead_s: float | None = None  # e2e minus scheduler step time meanwhile (c=1 only)
    retries: int = 0  # connection errors before the response, retried (RETRIES)


def body(model: str, messages: list[dict], max_tokens: int) -> dict:
    """Greedy streamed chat request; the same bytes go to every server."""
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip


# Connection failures before any response byte are retried this often, as the official
# openai client does (max_retries=2): a pooled keep-alive connection that the server
# closed as the request went out (uvicorn closes idle ones after 5 s) is not a server error.
RETRIES = 2
CONNECTION_ERRORS = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)


async def stream_chat(client: httpx.AsyncClient, req: dict) -> Sample:
    t0 = time.perf_counter()  # TTFT and e2e include any retry, as a user would see them
    for attempt in range(RETRIES + 1):
        ttft, parts, usage, responded = float("nan"), [], {}, False
        try:
            async with client.stream("POST", "/v1/chat/completions", json=req) as r:
                responded = True
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread()).decode()[:300]}")
                async for line in r.aiter_lines():
                    if (chunk := sse_data(line)) is None:
                        continue
                    usage = chunk.get("usage") or usage
                    if text := content_of(chunk):
                        if not parts:
                            ttft = time.perf_counter() - t0
                        parts.append(text)
        except CONNECTION_ERRORS:
            if responded or attempt == RETRIES:
                raise
            continue
        return Sample(ttft, time.perf_counter() - t0, int(usage.get("completion_tokens", 0)),
                      "".join(parts), usage.get("llm_tokens"), retries=attempt)  # fmt: skip
    raise AssertionError("unreachable: the last attempt returns or raises")


async def scrape(client: httpx.AsyncClient) -> dict[str, float] | None:
    """Scheduler counters of a citer gateway; None for a server without them (vLLM)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(await public_metrics(client)):
        for s in fam.samples:
            if not s.name.endswith("_total"):
                continue
            if fam.name == "citer:step_seconds":
                out[s.labels["part"] + "_s"] = s.value
            elif fam.name in COUNTERS:
                out[COUNTERS[fam.name]] = s.value
            elif fam.name == "citer:completion_tokens":
                key = "tokens_" + s.labels["source"]
                out[key] = out.get(key, 0.0) + s.value
    return out if "router_s" in out else None


def delta(after: dict[str, float] | None, before: dict[str, float] | None) -> dict[str, float]:
    if after is None or before is None:
        return {}
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


async def run_requests(
    client: httpx.AsyncClient, reqs: list[dict], conc: int, overhead: bool
) -> tuple[list[Sample], float]:
    """All requests, ``conc`` in flight (closed loop). With ``overhead`` (c=1 on the
    gateway) each request is bracketed by two scrapes, as loadtests/latency.py does;
    the returned wall time (s) leaves the scrapes out."""
    sem = asyncio.Semaphore(conc)
    scrape_s = 0.0

    async def one(req: dict) -> Sample:
        nonlocal scrape_s
        async with sem:
            if not overhead:
                return await stream_chat(client, req)
            t = time.perf_counter()
            before = await scrape(client)
            scrape_s += time.perf_counter() - t
            s = await stream_chat(client, req)
            t = time.perf_counter()
            d = delta(await scrape(client), before)
            scrape_s += time.perf_counter() - t
            if d:
                s.overhead_s = s.e2e_s - sum(d[p + "_s"] for p in STEP_PARTS)
            return s

    t0 = time.perf_counter()
    samples = await asyncio.gather(*(one(r) for r in reqs))
    return list(samples), time.perf_counter() - t0 - scrape_s


def tree_memory_mb(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, peak RSS) in MiB of a process and its descendants, each summed over
    the processes. RSS counts a page shared by several of them once per process, PSS
    splits it between them; peak RSS sums each process's VmHWM. Linux /proc only."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0, 0.0
    out = {"VmRSS:": 0.0, "Pss:": 0.0, "VmHWM:": 0.0}
    for p in procs:
        proc = Path("/proc") / str(p.pid)
        try:
            lines = (proc / "status").read_text().splitlines()
            lines += (proc / "smaps_rollup").read_text().splitlines()
        except OSError:  # exited meanwhile
            continue
        for line in lines:
            key = line.split(maxsplit=1)[0] if line else ""
            if key in out:
                out[key] += int(line.split()[1]) / 1024  # kB -> MiB
    return out["VmRSS:"], out["Pss:"], out["VmHWM:"]
