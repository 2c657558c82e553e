"""Accuracy vs LLM token share on the real pair, GSM8K and CommonsenseQA test items.

    for each dataset, for each routing config (slm, llm, <policy>:<threshold>):
        decode the first N test items not yet in the cache, 16 at a time (greedy, bf16,
        the scheduler the gateway runs, continuous batching over chunks of 64), verify
        each with its item's verifier and append one line per item to the cache
        (resumable: a rerun skips what is done)
    report (benchmarks.real_accuracy_report): accuracy, LLM token share, PGR, the
    paired bootstrap interval against the LLM, APGR / CPT per router, a plot

Cache lines are keyed by the pair's GGUF digests, the config, the answer length and
the item id, so results of another pair or setting are never mixed in; ``citer:<thr>``
and the other ``--cards`` configs (``citer-s``: CITER-S) are keyed by the card's weights
digest too. Thresholds per target share come from ``benchmarks.real_thresholds`` (train
items). Run: ``make bench-real-accuracy`` (hours on 2 cores: the 1.5B decodes ~19 tok/s
at 16).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks import class_router
from benchmarks.real_accuracy_report import card_digest, load_cache, write_report

DATA = {
    "gsm8k": ("../shared/data/gsm8k/test.jsonl", 320),  # (file, max tokens per answer)
    "commonsenseqa": ("../shared/data/commonsenseqa/test.jsonl", 160),
}


def pair_digest(pair_dir: Path) -> str:
    meta = json.loads((pair_dir / "pair.json").read_text())
    return f"{meta['slm']['gguf_sha256'][:12]}-{meta['llm']['gguf_sha256'][:12]}"


CARDS = ("citer=models/qwen2.5-coder/router,citer-s=models/qwen2.5-coder/router-s,"
         "citer-csqa=models/qwen2.5-coder/router-csqa,"
         "citer-s-r2r=build/real-router-r2r/card,"
         "citer-class=build/real-router-class/card,"
         "citer-class-all=build/real-router-class/card-all,"
         "citer-compare=build/real-router-compare/card,"
         "citer-compare600=build/real-router-compare600/card,"
         "citer-compare2=build/real-router-compare2/card,"
         "citer-compare3=build/real-router-compare3/card,"
         "citer-h=build/real-router-hidden/card,"
         "citer-csqa-h=build/real-router-csqa-hidden/card")  # fmt: skip


def card_paths(args: argparse.Namespace) -> dict[str, Path]:
    """Config prefix -> router card, from ``--cards name=path,...``."""
    pairs = [spec.partition("=") for spec in filter(None, args.cards.split(","))]
    return {name: Path(path) for name, _, path in pairs}


def keyed(config: str, cards: dict[str, Path]) -> str:
    """The cache's name of a config: a card config carries its card's weights digest."""
    policy, _, thr = config.partition(":")
    return f"citer@{card_digest(cards[policy])}:{thr}" if policy in cards else config


def run(args: argparse.Namespace) -> None:
    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.registry import make_router
    from tasks.public import read_items
    from tasks.verify import is_correct

    pair_dir, cache = Path(args.pair), Path(args.cache)
    digest = pair_digest(pair_dir)
    done = load_cache(cache)
    cards = card_paths(args)
    pair = build_pair(PairConfig(str(pair_dir / "slm"), str(pair_dir / "llm"), dtype="bfloat16",
                                 slm_quant=args.quant, llm_quant=args.quant))  # fmt: skip
    tag = "" if args.quant == "none" else f"+{args.quant}"  # never mixed with bf16 rows
    cache.parent.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        path, max_tokens = DATA[name]
        items = read_items(path)[: args.items]
        for shown in args.configs.split(","):
            policy, _, thr = shown.partition(":")
            config = keyed(shown, cards) + tag
            card = str(cards[policy]) if policy in cards else None
            if policy == class_router.NAME:  # an experiment (benchmarks/class_router.py)
                router = class_router.make(pair, float(thr) if thr else None)
                default = router.default_threshold
            else:
                router, default = make_router(pair, "citer" if card else policy,
                                              float(thr) if thr else None, None, card)  # fmt: skip
            todo = [it for it in items if (digest, name, config, max_tokens, it.id) not in done]
            print(f"{name} {config}: {len(items) - len(todo)} cached, {len(todo)} to decode",
                  flush=True)  # fmt: skip
            for k in range(0, len(todo), args.chunk):
                chunk = todo[k : k + args.chunk]
                bar = f"{shown} {k + 1}-{k + len(chunk)}"
                dec = ScheduledDecoder(pair, router, default, 4, args.concurrency, max_tokens, bar)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument("--datasets", default="gsm8k,commonsenseqa")
    ap.add_argument("--configs", default="slm,llm,confidence:0.3,confidence:0.5")
    ap.add_argument("--items", type=int, default=250, help="first N test items per dataset")
    ap.add_argument("--concurrency", type=int, default=16, help="items decoded together")
    ap.add_argument("--chunk", type=int, default=64, help="items per cache write (resume unit)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default="benchmarks/real/accuracy.jsonl")
    ap.add_argument(
        "--quant",
        default="none",
        choices=["none", "int8"],
        help="int8: weight-only int8 linears in both models (rows keyed <config>+int8)",
    )
    ap.add_argument("--cards", default=CARDS, help="name=card,...: configs <name>:<thr> route "
                    "with that card (citer-s: CITER-S, the shortcut round alone; citer-class: the "
                    "token-class card of make real-router-class; citer-class-all: the same "
                    "without --same-token-slm; citer-compare: make real-router-compare; "
                    "citer-compare600: the same with COMPARE_ROLLOUTS=600 "
                    "COMPARE_DIR=build/real-router-compare600; citer-compare2: a second compared "
                    "round (--rounds 2) on a nested 300-row sample; citer-compare3: the same with "
                    "--rollout-share 0.25; citer-h, "
                    "citer-csqa-h: hidden-state cards, in build/, not shipped)")  # fmt: skip
    ap.add_argument("--plot", default="benchmarks/real/accuracy.png")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not args.report_only:
        run(args)
    print(write_report(args, pair_digest(Path(args.pair)), card_paths(args)))


if __name__ == "__main__":
    main()
