"""The edge benchmark's cloud: the LLM server the edge calls (``citer serve`` of the LLM
alone, or vLLM's OpenAI server with prefix caching), and the cloud-only baseline."""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


def start_cloud(slm: str, llm: str, log: Path) -> tuple[subprocess.Popen, str, str]:
    """`citer serve` on a free port; (process, base URL, API key of a fresh tenant)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    admin = "sk-bench-" + secrets.token_hex(8)
    env = {
        **os.environ,
        "CITER_SLM": slm,
        "CITER_LLM": llm,
        "CITER_PORT": str(port),
        "CITER_ADMIN_KEY": admin,
        "CITER_LOG_LEVEL": "warning",
        "OMP_NUM_THREADS": "1",
        "CITER_MAX_BATCH": "64",
        "CITER_MAX_TOKENS_CAP": "4096",
        "CITER_POLICY": "llm",
    }  # the cloud serves model "llm": no router card needed
    proc = subprocess.Popen([sys.executable, "-m", "citer.cli", "serve"], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError(f"the cloud gateway did not start:\n{log.read_text()}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    tenant = {"id": "bench", "config": {"budget": {"limit": 1e9, "period": "1d"}}}
    r = httpx.post(url + "/admin/tenants", json=tenant,
                   headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    if r.status_code != 201:
        proc.terminate()
        raise RuntimeError(f"creating the benchmark tenant: {r.status_code} {r.text}")
    return proc, url, r.json()["key"]["plaintext"]


@contextmanager
def cloud(args: argparse.Namespace, log: Path) -> Iterator[tuple[str, str | None]]:
    """(base URL, API key or None) of the cloud LLM server: citer, or vLLM's."""
    if args.cloud == "vllm":
        from benchmarks.serving_server import vllm_server

        with vllm_server(args.vllm_python, args.llm, log, threads=1, prefix_caching=True) as (
            url,
            _,
        ):
            yield url, None
        return
    proc, url, key = start_cloud(args.slm, args.llm, log)
    try:
        yield url, key
    finally:
        proc.terminate()
        proc.wait(30)


def prefix_cache(url: str) -> dict[str, Any]:
    """vLLM's prefix-cache counters (prompt tokens queried / hit) from its /metrics."""
    text = httpx.get(url + "/metrics", timeout=30).text

    def total(name: str) -> float:
        pat = re.compile(rf"^{re.escape(name)}_total(?:{{[^}}]*}})? ([0-9.e+]+)$", re.M)
        return sum(float(v) for v in pat.findall(text))

    return {"prefix_cache_hits": total("vllm:prefix_cache_hits"),
            "prefix_cache_queries": total("vllm:prefix_cache_queries")}  # fmt: skip


def cloud_only(
    url: str, key: str | None, prompts: list[list[int]], max_tokens: int, conc: int
) -> dict:
    """One request per prompt straight to the cloud (through the proxy), ``conc`` at once."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:

        def one(p: list[int]) -> tuple[int, int, int, float]:
            body = {"model": "llm", "prompt": p, "max_tokens": max_tokens, "temperature": 0,
                    "return_token_ids": True}  # fmt: skip
            t = time.perf_counter()
            r = client.post("/v1/completions", json=body)
            r.raise_for_status()
            took = time.perf_counter() - t
            head = sum(len(k) + len(v) + 4 for k, v in r.request.headers.raw)  # bytes
            ids = r.json()["choices"][0]["token_ids"]
            return len(ids), len(r.request.content) + head, len(r.content), took

        t0 = time.perf_counter()
        with ThreadPoolExecutor(conc) as pool:
            res = list(pool.map(one, prompts))
        wall = time.perf_counter() - t0
    tokens = sum(r[0] for r in res)
    return {"tokens": tokens, "wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1),
            "llm_share": 1.0, "fallback_tokens": 0, "calls": len(res),
            "calls_per_token": round(len(res) / tokens, 4),
            "ids_sent_per_token": round(sum(map(len, prompts)) / tokens, 1),
            "bytes_sent_per_token": round(sum(r[1] for r in res) / tokens, 1),
            "bytes_received_per_token": round(sum(r[2] for r in res) / tokens, 1),
            "call_ms_mean": round(1000 * statistics.fmean(r[3] for r in res), 2),
            "call_ms_p50": round(1000 * statistics.median(r[3] for r in res), 2)}  # fmt: skip
