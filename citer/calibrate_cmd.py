"""``citer calibrate``: re-calibrate a router card's thresholds on your own task's data.

    card + pair --SLM-only greedy decodes of --data items (window 1, the real scheduler),
        the card scoring every generated position--> scores
    scores --calibration_table--> (threshold, LLM share) points
    new card at --out: the same weights, the new table, default threshold = the table's
        threshold for --default-share; training["calibrations"] records what was done

Why: ``train-router`` calibrates on teacher-forced reference answers of its own task.
Served on another task, or on a model that answers more confidently than the
references, the same threshold gives another share (the real pair's GSM8K card: 20%
promised, 10% on GSM8K test decodes, 39% on CommonsenseQA). The SLM's own decodes of
the task's items are the positions serving sees at a low LLM share. Never calibrate on
test items you will report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path


def add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="re-calibrate a router card on your task's items")
    p.add_argument("--slm", required=True, help="SLM folder the card was trained for")
    p.add_argument("--llm", required=True, help="LLM folder")
    p.add_argument("--card", required=True, help="the router card to calibrate")
    p.add_argument("--data", required=True, help="JSONL items of your task (never a test file)")
    p.add_argument("--items", type=int, default=64, help="first N items of --data")
    p.add_argument("--max-tokens", type=int, default=256, help="per SLM decode")
    p.add_argument("--default-share", type=float, default=0.2,
                   help="the new default threshold gives this LLM token share")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--out", required=True, help="folder of the calibrated card (not --card)")
    p.set_defaults(func=cmd_calibrate)


def check_args(args: argparse.Namespace) -> None:
    for flag, v in (("--items", args.items), ("--max-tokens", args.max_tokens),
                    ("--concurrency", args.concurrency)):  # fmt: skip
        if v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if not 0.0 <= args.default_share <= 1.0:
        raise ValueError(f"--default-share {args.default_share}: must lie in [0, 1]")
    if Path(args.out).resolve() == Path(args.card).resolve():
        raise ValueError(f"--out {args.out} is --card: write the calibrated card elsewhere")


def cmd_calibrate(args: argparse.Namespace) -> int:
    check_args(args)
    from tasks.public import read_items

    items = read_items(args.data)[: args.items]
    if not items:
        raise ValueError(f"--data {args.data}: no items")
    import torch

    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.card import CARD_JSON
    from router_models.recorder import ScoreRecorder
    from router_models.registry import make_router
    from router_models.share import threshold_for_share
    from router_models.train.calibrate import calibration_table, share_at

    torch.set_num_threads(args.threads)
    pair = build_pair(PairConfig(args.slm, args.llm, args.device, args.dtype))
    router, old = make_router(pair, "citer", card=args.card)  # checks the card's pins
    rec = ScoreRecorder({"card": router})
    dec = ScheduledDecoder(pair, rec, rec.default_threshold, 1, args.concurrency, args.max_tokens,
                           "slm decodes")  # fmt: skip
    dec(items)
    scores = torch.tensor(rec.scores["card"], dtype=torch.float64)
    card = router.card  # the card make_router loaded and checked; the router is done
    card.calibration = calibration_table(scores)
    card.default_threshold = threshold_for_share(card, args.default_share)
    note = {"data": Path(args.data).name, "items": len(items), "positions": len(scores),
            "max_tokens": args.max_tokens, "how": "SLM-only greedy decodes",
            "default_share": args.default_share}  # fmt: skip
    card.training = {**card.training,
                     "calibrations": [*card.training.get("calibrations", []), note]}  # fmt: skip
    out = Path(args.out)
    shutil.copytree(args.card, out, dirs_exist_ok=True)  # the weights, byte for byte
    tmp = out / (CARD_JSON + ".tmp")
    tmp.write_text(json.dumps(card.to_json(), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, out / CARD_JSON)
    print(f"citer calibrate: {len(scores)} positions of {len(items)} items; the old default "
          f"threshold {old:.4g} gives {share_at(scores, old):.1%} LLM tokens here, the new "
          f"{card.default_threshold:.4g} {share_at(scores, card.default_threshold):.1%} "
          f"(target {args.default_share:.1%}); wrote {out}")  # fmt: skip
    return 0
