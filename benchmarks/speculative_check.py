"""Speculative decoding on a pair: are its tokens the LLM's own, and how fast is it?

    for each concurrency c: the first max(--items, c) task items, decoded greedily (or
        at --temperature, seeded) once by the LLM alone (threshold -inf) and once
        speculatively with drafting at every batch size (speculative_max_batch = c),
        c at a time, one process
    table: answers token-for-token identical to the LLM's, the first differing position
        of those that are not, tok/s of each and their ratio, the drafts the LLM kept;
        with --llm-concurrency c2 also the LLM alone at c2 against the LLM alone at c
        (how often bf16 rounding alone, in batches of another size, changes an answer)

The engine tests prove identity on the float32 demo pair; in bf16 a verify pass over
several rows and a one-row decode pass can round a near-tie differently, which this
measures. Run: ``make bench-real-speculative``
(~10 min on 2 cores with the defaults).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from engines.types import RequestOutput

GSM8K_TEST = "../shared/data/gsm8k/test.jsonl"


def decode(pair, items, conc: int, max_tokens: int, spec: bool, window: int,
           temperature: float = 0.0):  # fmt: skip
    """Outputs and wall seconds of one configuration (a fresh scheduler, warm caches)."""
    from engines.async_engine import generate_batch
    from engines.scheduler import Scheduler, SchedulerConfig
    from engines.types import Request, RoutingParams, SamplingParams
    from router_models.registry import make_router
    from tasks.chat import chat_ids

    router, _ = make_router(pair, "slm", None)  # no score is read: every position is LLM's
    cfg = SchedulerConfig(window=window, max_batch=conc, seed=0, speculative_max_batch=conc)
    sched = Scheduler(pair.slm, pair.llm, router, pair.tokenizer, cfg)
    routing = RoutingParams(speculative=True) if spec else RoutingParams(float("-inf"))
    sp = SamplingParams(max_tokens=max_tokens, temperature=temperature)
    prompts = [chat_ids(pair.tokenizer, it.messages) for it in items]
    pair.reserve_kv(conc, max(map(len, prompts)) + max_tokens + window + 1)
    reqs = [Request(str(i), p, sp, routing) for i, p in enumerate(prompts)]
    t0 = time.perf_counter()
    outs = generate_batch(sched, reqs)
    return outs, time.perf_counter() - t0


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first position where two answers differ (None: identical)."""
    n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    return n if n is not None or len(a) == len(b) else min(len(a), len(b))


def compare(llm: list[RequestOutput], spec: list[RequestOutput]) -> dict:
    diffs = [first_difference(a.token_ids, b.token_ids) for a, b in zip(llm, spec, strict=True)]
    llm_tok = sum(o.stats.llm_tokens for o in spec)
    return {
        "items": len(llm),
        "identical": sum(d is None for d in diffs),
        "first_differences": sorted(d for d in diffs if d is not None),
        "agreed": round(sum(o.stats.llm_agreed_tokens for o in spec) / max(1, llm_tok), 3),
        "drafted_per_token": round(sum(o.stats.drafted_tokens for o in spec) / max(1, llm_tok), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument("--data", default=GSM8K_TEST, help="a JSONL file, or demo: its test split")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--items", type=int, default=3, help="items per point: max(this, c)")
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--llm-concurrency", type=int, default=0,
                    help="also decode the LLM alone at this concurrency and compare")  # fmt: skip
    ap.add_argument("--temperature", type=float, default=0.0,
                    help="sampled, seeded per request (the drafts kept fall with it)")  # fmt: skip
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/real/speculative.json")
    args = ap.parse_args()
    import torch

    from engines.pair import PairConfig, build_pair
    from tasks.public import read_items
    from tasks.splits import load_split

    torch.set_num_threads(args.threads)
    pair_dir = Path(args.pair)
    pair = build_pair(PairConfig(str(pair_dir / "slm"), str(pair_dir / "llm"), dtype=args.dtype))
    rows = []
    for conc in map(int, args.concurrency.split(",")):
        n = max(args.items, conc)
        items = load_split("test", n) if args.data == "demo" else read_items(args.data)[:n]
        t = args.temperature
        llm, t_llm = decode(pair, items, conc, args.max_tokens, False, args.window, t)
        spec, t_spec = decode(pair, items, conc, args.max_tokens, True, args.window, t)
        tps = [
            sum(len(o.token_ids) for o in outs) / t for outs, t in ((llm, t_llm), (spec, t_spec))
        ]
        if args.llm_concurrency:
            other, _ = decode(pair, items, args.llm_concurrency, args.max_tokens, False,
                              args.window)  # fmt: skip
            base = compare(llm, other)
            print(f"LLM alone at c={args.llm_concurrency} vs c={conc}: {base['identical']}"
                  f"/{base['items']} identical, first differences "
                  f"{base['first_differences']}", flush=True)  # fmt: skip
        row = {"concurrency": conc, **compare(llm, spec), "llm_tok_s": round(tps[0], 2),
               "speculative_tok_s": round(tps[1], 2),
               "speed_up": round(tps[1] / tps[0], 3)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| c | items | identical to the LLM's | first differences | LLM tok/s | speculative "
          "tok/s | speed-up | drafts kept | drafted / token |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['items']} | {r['identical']} | "
              f"{r['first_differences'] or '-'} | {r['llm_tok_s']} | {r['speculative_tok_s']} | "
              f"{r['speed_up']}x | {r['agreed']} | {r['drafted_per_token']} |")  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
