"""What one engine pass costs by batch and new tokens: the profile behind the routing ceiling.

    for each model (SLM, LLM), batch b, new tokens n per sequence:
        b sequences hold a prompt of P tokens; time R passes that each append n tokens
        per sequence and produce 1 (the LLM's catch-up + token at a cut; n = 1 is a plain
        decode step), cropping back after each so every pass sees the same cache
        report ms per pass and ms per row (b x n), and each row's cost against a
        batch-1 decode row

Why it matters: token routing saves LLM *passes*, not LLM rows. The LLM still
processes every generated token (it catches up on the SLM's tokens at each cut), so a
routed run wins only as far as a pass over fewer sequences, or over several new tokens
per sequence, costs less per row than LLM-only decode passes, by more than the SLM's
own passes cost. Scattered rows (``--live``) time the copy a routed pass over a subset
of the cached sequences makes (``engines.kvcache``). Run: ``make bench-pass-cost``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def time_pass(engine, b: int, n: int, prompt: int, reps: int, vocab: int,  # noqa: ANN001
              live: int = 0) -> float:  # fmt: skip
    """Median seconds of one pass: b sequences x n new tokens each, 1 token out. With
    ``live`` > b, that many sequences hold caches and the pass takes every
    (live // b)-th one: the scattered subset a routed LLM pass covers."""
    from engines.types import SamplingParams, SeqWork

    greedy = SamplingParams(temperature=0.0, max_tokens=1)
    held = list(range(max(b, live)))
    ids = held[:: len(held) // b][:b]
    engine.step([SeqWork(i, 0, [(7 * i + j) % vocab for j in range(prompt)], greedy, 0)
                 for i in held])  # fmt: skip
    times = []
    for r in range(reps + 1):  # the first pass warms up and is not counted
        work = [SeqWork(i, prompt, [(11 * r + j + i) % vocab for j in range(n)], greedy, 0)
                for i in ids]  # fmt: skip
        t = time.perf_counter()
        engine.step(work)
        times.append(time.perf_counter() - t)
        for i in ids:
            engine.crop(i, prompt)
    for i in held:
        engine.free(i)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slm", default="models/demo/slm")
    ap.add_argument("--llm", default="models/demo/llm")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--quant", default="none", help="none, or int8 (bfloat16 only)")
    ap.add_argument("--batches", default="1,2,4,8,16,64")
    ap.add_argument("--new", default="1,2,5", help="new tokens per sequence per pass")
    ap.add_argument("--prompt", type=int, default=128, help="cached tokens per sequence")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument(
        "--live",
        type=int,
        default=16,
        help="sequences holding caches in the scattered rows (0: none)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/pass_cost.json")
    args = ap.parse_args()
    import torch

    from engines.hf import HFEngine, HFEngineConfig

    torch.set_num_threads(args.threads)
    rows = []
    for name, path in (("slm", args.slm), ("llm", args.llm)):
        engine = HFEngine(HFEngineConfig(path, "cpu", args.dtype, quant=args.quant))
        vocab = engine.info.vocab_size
        base = None
        for b in map(int, args.batches.split(",")):
            for n in map(int, args.new.split(",")):
                s = time_pass(engine, b, n, args.prompt, args.reps, vocab)
                base = base or s  # b = 1, n = 1 comes first: a batch-1 decode row
                row = {"model": name, "batch": b, "new": n, "ms_pass": round(1e3 * s, 2),
                       "ms_row": round(1e3 * s / (b * n), 3),
                       "row_vs_b1": round(s / (b * n) / base, 3)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.live > b and n > 1:  # the same pass over every (live/b)-th cache
                    t = time_pass(engine, b, n, args.prompt, args.reps, vocab, args.live)
                    rows.append({**row, "live": args.live, "ms_pass": round(1e3 * t, 2),
                                 "ms_row": round(1e3 * t / (b * n), 3),
                                 "row_vs_b1": round(t / (b * n) / base, 3)})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
        engine.close()
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    print("| model | batch | new tokens | caches held | ms / pass | ms / row "
          "| row cost vs a batch-1 row |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        held = f"{r['live']} (every {r['live'] // r['batch']}th)" if "live" in r else r["batch"]
        print(f"| {r['model']} | {r['batch']} | {r['new']} | {held} | {r['ms_pass']} "
              f"| {r['ms_row']} | {r['row_vs_b1']} |")  # fmt: skip


if __name__ == "__main__":
    main()
