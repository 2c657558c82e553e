"""Thresholds that give each router a target LLM token share, picked on TRAIN items.

    for each router (confidence, entropy, citer cards...):
        decode N train items with the SLM alone (greedy, window 1, the real scheduler),
        score every generated position with every router at once
        threshold for share s = the (1 - s) quantile of its scores
    random:t routes a share of 1 - t by construction and needs no probe

The accuracy sweep (``benchmarks.real_accuracy``) then runs ``<router>:<threshold>``
configs on the test files, so no threshold is chosen by looking at test items. The
share a routed decode reaches differs somewhat from the SLM-only trajectory's (the LLM
changes what comes next); the sweep reports the share it measured.
Run: ``python -m benchmarks.real_thresholds --dataset commonsenseqa --shares 0.03,0.07,0.15``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import class_router
from router_models.recorder import ScoreRecorder

TRAIN = {
    "gsm8k": ("../shared/data/gsm8k/train.jsonl", 320),
    "commonsenseqa": ("../shared/data/commonsenseqa/train.jsonl", 160),
}


def quantile_threshold(scores: list[float], share: float) -> float:
    """The threshold above which a ``share`` fraction of ``scores`` lies."""
    s = sorted(scores)
    i = min(len(s) - 1, max(0, round((1.0 - share) * len(s))))
    return s[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument("--dataset", choices=sorted(TRAIN), default="commonsenseqa")
    ap.add_argument("--items", type=int, default=32, help="first N train items")
    ap.add_argument("--shares", default="0.03,0.07,0.15,0.3")
    ap.add_argument("--cards", default="citer=models/qwen2.5-coder/router,"
                    "citer-s=models/qwen2.5-coder/router-s", help="name=card,...")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.registry import make_router
    from tasks.public import read_items

    torch.set_num_threads(args.threads)
    pair_dir = Path(args.pair)
    pair = build_pair(PairConfig(str(pair_dir / "slm"), str(pair_dir / "llm"), dtype="bfloat16"))
    routers = {p: make_router(pair, p)[0] for p in ("confidence", "entropy")}
    routers[class_router.NAME] = class_router.make(pair)  # an experiment: class_router.py
    for spec in filter(None, args.cards.split(",")):
        name, _, card = spec.partition("=")
        routers[name] = make_router(pair, "citer", card=card)[0]
    rec = ScoreRecorder(routers)
    path, max_tokens = TRAIN[args.dataset]
    items = read_items(path)[: args.items]
    ScheduledDecoder(pair, rec, rec.default_threshold, 1, 16, max_tokens, "slm decodes")(items)
    shares = [float(s) for s in args.shares.split(",")]
    out = {k: {str(s): round(quantile_threshold(v, s), 4) for s in shares}
           for k, v in rec.scores.items()}  # fmt: skip
    out["random"] = {str(s): round(1.0 - s, 4) for s in shares}
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "items": len(items),
                "positions": len(rec.scores["confidence"]),
                "thresholds": out,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
