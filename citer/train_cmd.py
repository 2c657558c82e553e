"""``citer train-router``: train, calibrate and save a CITER router card for a model pair.

Thin CLI over ``router_models.train.pipeline.train_router``: parses and
validates every option (bad input fails before any model is loaded), loads
the items and the pair, and runs the pipeline. Collections are cached under
``--work-dir`` by content, and finished rounds are resumed unless ``--fresh``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from engines.scheduler_config import SchedulerConfig


def add_train_router(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-router", help="train the CITER router card for an SLM/LLM pair")
    p.add_argument("--slm", default="models/demo/slm", help="SLM folder")
    p.add_argument("--llm", default="models/demo/llm", help="LLM folder (same tokenizer)")
    p.add_argument("--out", default="models/demo/router", help="router card folder to write")
    p.add_argument("--work-dir", default="build/router", help="caches, checkpoints, report")
    p.add_argument("--train-items", type=int, default=2000, help="train items teacher-forced")
    p.add_argument(
        "--data",
        help="train file instead of the built-in train split: task "
        "items or GSM8K / CommonsenseQA lines (tasks.public), with references",
    )
    p.add_argument(
        "--val-data",
        help="calibration/validation file (same schemas); never a test file. Default: "
        "the last --val-items items of --data (held out of training), else the built-in "
        "validation split",
    )
    p.add_argument(
        "--references",
        choices=("data", "llm"),
        default="data",
        help="what the router is teacher-forced along: the items' worked solutions (data) "
        "or the LLM's own greedy answers to the train items it solves (llm: R2R-style "
        "labels; the items it gets wrong are dropped)",
    )
    p.add_argument(
        "--default-share",
        type=float,
        default=0.2,
        help="the card's default threshold is its calibrated threshold for this "
        "LLM token share (default 0.2)",
    )
    p.add_argument("--families", default=None, help="comma-separated families (default: all)")
    p.add_argument("--val-items", type=int, default=400, help="validation items (calibration)")
    p.add_argument(
        "--val-decode-items",
        type=int,
        default=200,
        help="validation items decoded per round (accuracy, real share)",
    )
    p.add_argument("--val-shares", default="0.1,0.2,0.3", help="target shares decoded per round")
    p.add_argument(
        "--cost-lambda",
        type=float,
        default=0.2,
        help="cost of one LLM token in units of a correct answer, in [0, 1)",
    )
    p.add_argument(
        "--rounds", type=int, default=3,
        help="most rounds with rollouts; 0 = CITER-S only (shortcut labels, no rollouts)",
    )  # fmt: skip
    p.add_argument("--tol", type=float, default=0.01, help="stop when fewer rollout labels flip")
    p.add_argument("--max-rollouts", type=int, default=1500, help="rows rolled out per round")
    p.add_argument(
        "--judge-llm-rows",
        action="store_true",
        help="roll out the rows where only the LLM follows the reference too, instead of "
        "labelling them LLM (most such divergences do not change the answer); with "
        "token:class the rollout sample is split evenly between token classes",
    )
    p.add_argument(
        "--same-token-slm",
        action="store_true",
        help="label SLM, without a rollout, the rows where both models draft the same "
        "token off the reference: the LLM would write that token too",
    )
    p.add_argument(
        "--rollout-compare",
        action="store_true",
        help="where the rollout from the SLM's token fails, roll out from the LLM's token "
        "too and label LLM only if that one answers right (both fail: the continuation, "
        "not the token, lost the answer; SLM); up to 2x the rollout time",
    )
    p.add_argument(
        "--rollout-share",
        type=float,
        default=None,
        help="from round 2, roll out under the previous round's card at the threshold that "
        "sends this share of the train rows to the LLM (default: at 0.5, where a cost-aware "
        "card may route nothing)",
    )
    p.add_argument(
        "--features",
        default="hidden:final,logprobs:top8",
        help="router inputs, comma-separated: hidden:final (SLM final hidden state), "
        "logprobs:top8 (SLM's 8 largest log-probs), token:class (number / word / other "
        "drafted token; every engine gives it)",
    )
    p.add_argument(
        "--no-llm-check",
        action="store_true",
        help="skip the LLM-only decode of the train items: shortcut rule 2 (LLM matches the "
        "reference -> LLM) then applies even on items the LLM itself gets wrong",
    )
    p.add_argument("--rollout-max-tokens", type=int, default=320)
    p.add_argument("--window", type=int, default=SchedulerConfig().window,
                   help="SLM run-ahead drafts per step (the gateway's default)")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=32, help="sequences decoded together")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument(
        "--width",
        type=int,
        default=None,
        help="router MLP width h (inner layers 2h and h); default: the SLM hidden size, as "
        "in the paper (a 0.5B SLM's 896 makes a 13 MB card; 128 makes ~1 MB)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--query-items",
        type=int,
        default=1000,
        help="train items decoded SLM-only to label the query-level router",
    )
    p.add_argument("--no-baselines", action="store_true", help="skip the baseline cards")
    p.add_argument("--no-ablation", action="store_true", help="skip the feature ablation")
    p.add_argument("--fresh", action="store_true", help="ignore finished rounds in --work-dir")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: robust when other jobs share the cores)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.set_defaults(func=cmd_train_router)


def _shares(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--val-shares {text!r}: need comma-separated numbers") from None


def build_config(args: argparse.Namespace):  # -> TrainConfig
    """Every option validated here, before items or models are loaded."""
    from router_models.train.loop import LoopConfig
    from router_models.train.pipeline import TrainConfig
    from router_models.train.rollout import RolloutConfig
    from router_models.train.train import FitConfig

    for name in ("train_items", "val_items", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    from router_models.citer import SUPPORTED_FEATURES

    feats = tuple(f.strip() for f in args.features.split(",") if f.strip())
    bad = [f for f in feats if f not in SUPPORTED_FEATURES]
    if bad or not feats or len(set(feats)) != len(feats):
        raise ValueError(
            f"--features {args.features!r}: need distinct names from {list(SUPPORTED_FEATURES)}"
        )
    return TrainConfig(
        features=feats,
        slm=args.slm,
        llm=args.llm,
        out=args.out,
        work_dir=args.work_dir,
        val_decode_items=args.val_decode_items,
        val_shares=_shares(args.val_shares),
        query_items=args.query_items,
        baselines=not args.no_baselines,
        ablation=not args.no_ablation,
        llm_check=not args.no_llm_check,
        fit=FitConfig(
            cost_lambda=args.cost_lambda, epochs=args.epochs, seed=args.seed, width=args.width
        ),
        loop=LoopConfig(
            rounds=args.rounds,
            tol=args.tol,
            max_rollouts=args.max_rollouts,
            seed=args.seed,
            judge_llm_rows=args.judge_llm_rows,
            same_token_slm=args.same_token_slm,
            rollout_compare=args.rollout_compare,
            rollout_share=args.rollout_share,
        ),
        rollout=RolloutConfig(
            max_tokens=args.rollout_max_tokens, window=args.window, concurrency=args.concurrency
        ),
        default_share=args.default_share,
        references=args.references,
    )


def load_items(args: argparse.Namespace) -> tuple[list, list]:
    """(train items, validation items); refuses items the verifier cannot check."""
    from router_models.train.references import check_verifiable
    from tasks.public import read_items
    from tasks.splits import load_split

    fams = args.families.split(",") if args.families else None

    def from_file(path: str, n: int) -> list:
        items = [it for it in read_items(path) if fams is None or it.family in fams]
        if not items:
            raise ValueError(f"{path}: no items" + (f" of families {fams}" if fams else ""))
        return items[:n]

    if args.data and not args.val_data:  # hold the file's last items out for calibration
        items = from_file(args.data, 10**9)
        if len(items) <= args.val_items:
            raise ValueError(f"--data {args.data}: {len(items)} items, so none are left for "
                             f"training after holding out --val-items {args.val_items} for "
                             "calibration (or pass --val-data)")  # fmt: skip
        train, val = items[: -args.val_items][: args.train_items], items[-args.val_items :]
    else:
        train = from_file(args.data, args.train_items) if args.data else load_split(
            "train", args.train_items, fams)  # fmt: skip
        val = from_file(args.val_data, args.val_items) if args.val_data else load_split(
            "validation", args.val_items, fams)  # fmt: skip
    check_verifiable(train, f"train ({args.data})" if args.data else "train")
    check_verifiable(val, f"validation ({args.val_data})" if args.val_data else "validation")
    ids = {it.prompt_text for it in train}
    if args.val_data and any(it.prompt_text in ids for it in val):
        raise ValueError(f"--val-data {args.val_data} shares items with the train data: "
                         "calibrate on items the router was not trained on")  # fmt: skip
    return train, val


def cmd_train_router(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    train_items, val_items = load_items(args)
    import torch

    from engines.pair import PairConfig, build_pair
    from router_models.train.pipeline import train_router

    torch.set_num_threads(args.threads)  # a CLI-time choice, never at import
    if args.fresh:
        shutil.rmtree(Path(cfg.work_dir) / "rounds", ignore_errors=True)
    t0 = time.perf_counter()
    pair = build_pair(PairConfig(cfg.slm, cfg.llm, args.device, args.dtype))
    pins = {"tokenizer_hash": pair.tokenizer_hash, "slm_weights": pair.slm_weights}
    report = train_router(cfg, (pair.slm, pair.llm, pair.tokenizer), pins, train_items, val_items)
    total = round(time.perf_counter() - t0, 1)
    report["timing"]["total_s"] = total
    (Path(cfg.work_dir) / "train_report.json").write_text(json.dumps(report, indent=2))
    print(f"train-router: wrote {cfg.out} in {total} s; timings {json.dumps(report['timing'])}")
    return 0
