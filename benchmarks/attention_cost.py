"""What one decode forward's attention costs, by model and concurrency: SDPA as
transformers calls it under a mask vs the fp32 matmuls ``engines.matmul_attention`` runs
for bf16/fp16 caches on the CPU, and the cache bytes it reads.

    for each model of each pair (configs only; random weights are never needed):
        KV bytes per cached token = layers x 2 x kv_heads x head_dim x element size
        per concurrency c: every layer's attention of c queries (1 new token each) over
            P cached positions, read from a pool laid out as the engines' (engines.kvcache:
            [slots, kv_heads, capacity, dim]), one pool per layer so the forward's working
            set is the whole cache, as in a real step; ms per forward for SDPA (keys and
            values repeated to the query heads, additive mask: transformers' path under a
            mask) and for the matmul path (bf16/fp16 only), MB read, GB/s
    and the machine's streaming read rate (one thread summing a 512 MB tensor)

Decode attention reads the whole cache, so at high concurrency the cache-bytes ratio
SLM/LLM, not the parameter ratio, is what a routed token's SLM rows cost against an LLM
row. Run: ``python -m benchmarks.attention_cost`` (prints a table; ``--json`` writes it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig

from engines import matmul_attention
from engines.kvcache import kv_shape


def shape(folder: Path) -> dict[str, Any]:
    """Layers, heads, kv heads, head dim and dtype of a model folder (its config only)."""
    c = AutoConfig.from_pretrained(folder).get_text_config(decoder=True)
    layers, _, kv_heads, dim = kv_shape(c)
    return dict(layers=layers, heads=c.num_attention_heads, kv_heads=kv_heads, dim=dim,
                dtype=c.dtype or torch.float32)  # fmt: skip


def stream_gbs(mb: int = 512, reps: int = 5) -> float:
    """GB/s of one thread reading a tensor far larger than the CPU's caches."""
    x = torch.ones(mb * 2**20 // 4)
    x.sum()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - t)
    return mb * 2**20 / statistics.median(times) / 1e9


def attention_ms(s: dict, c: int, positions: int, capacity: int, reps: int,
                 matmul: bool) -> float:  # fmt: skip
    """Median ms of one decode forward's attention (all layers) at concurrency c."""
    dt = s["dtype"]
    kv = [
        (torch.randn(c, s["kv_heads"], capacity, s["dim"]).to(dt)[:, :, :positions],
         torch.randn(c, s["kv_heads"], capacity, s["dim"]).to(dt)[:, :, :positions])
        for _ in range(s["layers"])
    ]  # fmt: skip
    q = torch.randn(c, s["heads"], 1, s["dim"]).to(dt)
    mask = torch.zeros(c, 1, 1, positions, dtype=dt)  # the additive mask a decode step passes
    groups = s["heads"] // s["kv_heads"]

    def forward() -> None:
        for k, v in kv:
            if matmul:
                matmul_attention.attend(q, k, v, mask)
            else:  # transformers repeats the key/value heads when a mask is given
                k = k[:, :, None].expand(-1, -1, groups, -1, -1).flatten(1, 2)
                v = v[:, :, None].expand(-1, -1, groups, -1, -1).flatten(1, 2)
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    forward()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        forward()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", help="name=folder holding slm/ and llm/ (not built: left out)",
                    default="demo=models/demo,qwen2.5-coder=build/pairs/qwen2.5-coder")  # fmt: skip
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--positions", type=int, default=300, help="cached positions per sequence")
    ap.add_argument("--capacity", type=int, default=512, help="pool positions per slot")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", default="", help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gbs = stream_gbs()
    print(f"streaming read, {args.threads} thread(s): {gbs:.1f} GB/s\n")
    print("| pair | model | layers x kv heads x dim, dtype | KV KB/token | c | MB read "
          "| SDPA ms/forward | GB/s | matmul ms/forward | GB/s | SDPA / matmul |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for spec in args.pairs.split(","):
        name, folder = spec.split("=")
        if not (Path(folder) / "llm" / "config.json").exists():
            print(f"| {name} | not built ({folder}) ||||||||||")
            continue
        for model in ("slm", "llm"):
            s = shape(Path(folder) / model)
            per_token = s["layers"] * 2 * s["kv_heads"] * s["dim"] * s["dtype"].itemsize
            dtype = str(s["dtype"]).removeprefix("torch.")
            # timed where the engines take it (bf16/fp16 on the CPU), not for float32
            reduced = matmul_attention.fits(torch.zeros(1, 1, 1, 1, dtype=s["dtype"]), None, {})
            for c in [int(x) for x in args.concurrency.split(",")]:
                sdpa = attention_ms(s, c, args.positions, args.capacity, args.reps, False)
                mm = attention_ms(s, c, args.positions, args.capacity, args.reps, True) \
                    if reduced else None  # fmt: skip
                mb = c * args.positions * per_token / 1e6
                rows.append({"pair": name, "model": model, **s, "dtype": dtype,
                             "kv_bytes_per_token": per_token, "c": c, "positions": args.positions,
                             "mb": mb, "sdpa_ms": sdpa, "matmul_ms": mm})  # fmt: skip
                mm_cols = f"{mm:.2f} | {mb / mm:.1f} | {sdpa / mm:.2f}x" if mm else "- | - | -"
                print(f"| {name} | {model} | {s['layers']} x {s['kv_heads']} x {s['dim']},"
                      f" {dtype} | {per_token / 1024:.2f} | {c} | {mb:.1f} | {sdpa:.2f}"
                      f" | {mb / sdpa:.1f} | {mm_cols} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(dict(stream_gbs=gbs, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
