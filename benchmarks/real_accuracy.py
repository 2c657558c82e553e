"""Accuracy vs LLM token share on the real pair, GSM8K and CommonsenseQA test items.

    for each dataset, for each routing config (slm, llm, <policy>:<threshold>):
        decode the first N test items not yet in the cache, 16 at a time (greedy, bf16,
        the scheduler the gateway runs), verify each with its item's verifier and
        append one line per item to the cache (resumable: a rerun skips what is done)
    report: accuracy, LLM token share, items; for each routed config the paired
    bootstrap 95% interval of (its accuracy - the LLM's) on the items both decoded

Cache lines are keyed by the pair's GGUF digests, the config, the answer length and
the item id, so results of another pair or setting are never mixed in; ``citer:<thr>``
configs use the router card ``--card`` and are keyed by its weights' digest too. PGR is
the performance gap recovered, (accuracy - SLM's) / (LLM's - SLM's). Run:
``make bench-real-accuracy`` (hours on 2 cores: the 1.5B decodes ~19 tok/s at 16).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

DATA = {
    "gsm8k": ("../shared/data/gsm8k/test.jsonl", 320),  # (file, max tokens per answer)
    "commonsenseqa": ("../shared/data/commonsenseqa/test.jsonl", 160),
}
BOOT = 2000  # paired bootstrap resamples


def pair_digest(pair_dir: Path) -> str:
    meta = json.loads((pair_dir / "pair.json").read_text())
    return f"{meta['slm']['gguf_sha256'][:12]}-{meta['llm']['gguf_sha256'][:12]}"


def card_digest(card: Path) -> str:
    import hashlib

    return hashlib.sha256((card / "router.safetensors").read_bytes()).hexdigest()[:8]


def keyed(config: str, card: Path) -> str:
    """The cache's name of a config: a citer config carries its card's digest."""
    policy, _, thr = config.partition(":")
    return f"citer@{card_digest(card)}:{thr}" if policy == "citer" else config


def load_cache(path: Path) -> dict[tuple, dict]:
    done: dict[tuple, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[(r["pair"], r["dataset"], r["config"], r["max_tokens"], r["id"])] = r
    return done


def run(args: argparse.Namespace) -> None:
    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.registry import make_router
    from tasks.public import read_items
    from tasks.verify import is_correct

    pair_dir, cache = Path(args.pair), Path(args.cache)
    digest = pair_digest(pair_dir)
    done = load_cache(cache)
    pair = build_pair(PairConfig(str(pair_dir / "slm"), str(pair_dir / "llm"), dtype="bfloat16"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        path, max_tokens = DATA[name]
        items = read_items(path)[: args.items]
        for shown in args.configs.split(","):
            policy, _, thr = shown.partition(":")
            config = keyed(shown, Path(args.card))
            card = args.card if policy == "citer" else None
            router, default = make_router(pair, policy, float(thr) if thr else None, None, card)
            todo = [it for it in items if (digest, name, config, max_tokens, it.id) not in done]
            print(f"{name} {config}: {len(items) - len(todo)} cached, {len(todo)} to decode",
                  flush=True)  # fmt: skip
            for k in range(0, len(todo), args.chunk):
                chunk = todo[k : k + args.chunk]
                dec = ScheduledDecoder(pair, router, default, 4, args.chunk, max_tokens)
                t0 = time.perf_counter()
                gens = dec(chunk)
                with cache.open("a") as f:
                    for it, g, o in zip(chunk, gens, dec.outputs, strict=True):
                        row = {"pair": digest, "dataset": name, "config": config,
                               "max_tokens": max_tokens, "id": it.id,
                               "correct": is_correct(g.text, it.answer, it.verifier),
                               "tokens": len(o.token_ids), "llm_tokens": o.stats.llm_tokens,
                               "finish": o.finish_reason}  # fmt: skip
                        f.write(json.dumps(row) + "\n")
                        done[(digest, name, config, max_tokens, it.id)] = row
                toks = sum(len(o.token_ids) for o in dec.outputs)
                print(f"  {k + len(chunk)}/{len(todo)}: {toks / (time.perf_counter() - t0):.1f} "
                      "tok/s", flush=True)  # fmt: skip


def paired_interval(a: list[bool], b: list[bool], seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(a) - mean(b) over paired items (percentage points)."""
    rng, n = random.Random(seed), len(a)
    diffs = sorted(
        sum(a[i] - b[i] for i in (rng.randrange(n) for _ in range(n))) / n for _ in range(BOOT)
    )
    return 100 * diffs[int(0.025 * BOOT)], 100 * diffs[int(0.975 * BOOT) - 1]


def report(args: argparse.Namespace) -> str:
    digest = pair_digest(Path(args.pair))
    rows = [r for r in load_cache(Path(args.cache)).values() if r["pair"] == digest]
    lines = ["| dataset | config | items | accuracy | LLM token share | PGR | cut at max_tokens "
             "| vs LLM (95% CI, points) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in args.datasets.split(","):
        by: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["dataset"] == name:
                by.setdefault(r["config"], {})[r["id"]] = r
        llm = by.get("llm", {})
        slm = by.get("slm", {})
        for shown in args.configs.split(","):
            config = keyed(shown, Path(args.card))
            got = by.get(config, {})
            if not got:
                continue
            n = len(got)
            acc = 100 * sum(r["correct"] for r in got.values()) / n
            share = sum(r["llm_tokens"] for r in got.values()) / max(
                1, sum(r["tokens"] for r in got.values())
            )
            both = sorted(set(got) & set(llm))
            ci = "-"
            if config != "llm" and len(both) >= 10:
                lo, hi = paired_interval([got[i]["correct"] for i in both],
                                         [llm[i]["correct"] for i in both])  # fmt: skip
                ci = f"[{lo:+.1f}, {hi:+.1f}] on {len(both)}"
            cut = sum(r.get("finish") == "length" for r in got.values())
            lines.append(f"| {name} | {shown} | {n} | {acc:.1f}% | {100 * share:.1f}% | "
                         f"{pgr(got, slm, llm)} | {cut} | {ci} |")  # fmt: skip
    return "\n".join(lines)


def pgr(got: dict[str, dict], slm: dict[str, dict], llm: dict[str, dict]) -> str:
    """Performance gap recovered on the items all three decoded; "-" without a gap."""
    both = set(got) & set(slm) & set(llm)
    acc = {k: sum(d[i]["correct"] for i in both) for k, d in (("x", got), ("s", slm), ("l", llm))}
    if not both or acc["l"] == acc["s"]:
        return "-"
    return f"{(acc['x'] - acc['s']) / (acc['l'] - acc['s']):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument("--datasets", default="gsm8k,commonsenseqa")
    ap.add_argument("--configs", default="slm,llm,confidence:0.3,confidence:0.5")
    ap.add_argument("--items", type=int, default=250, help="first N test items per dataset")
    ap.add_argument("--chunk", type=int, default=16, help="items decoded together")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="benchmarks/real/accuracy.jsonl")
    ap.add_argument("--card", default="models/qwen2.5-coder/router", help="for citer:<thr>")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not args.report_only:
        run(args)
    table = report(args)
    print(table)
    Path(args.cache).with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
