"""The ``citer`` command line: ``citer eval`` today; serve, bench and
train-router join it as their issues land."""

from __future__ import annotations

import argparse
import json
import sys

from citer import bench_cmd, serve_cmd
from citer.calibrate_cmd import add_calibrate
from citer.sweep_cmd import add_sweep_args, cmd_sweep
from citer.train_cmd import add_train_router
from engines.modelcheck import ModelFolderError
from engines.scheduler_config import SchedulerConfig

# Router names of router_models.registry (kept here so `citer --help` imports no torch).
from router_models.registry import router_names
from tasks.evaluate import MAX_NEW_TOKENS
from tasks.types import TaskDataError

POLICIES = tuple(router_names())  # the registry is the one list of router names


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="decode a task split and report accuracy")
    p.add_argument("--model", help="one HF model folder, decoded alone (HF generate, greedy)")
    p.add_argument("--slm", default="models/demo/slm", help="SLM folder (routed decoding)")
    p.add_argument("--llm", default="models/demo/llm", help="LLM folder (routed decoding)")
    p.add_argument("--policy", default="citer", choices=POLICIES, help="router (default citer)")
    p.add_argument("--threshold", type=float, help="LLM iff score > threshold")
    p.add_argument("--target-share", type=float, help="LLM token share via the card's calibration")
    p.add_argument("--router", "--router-card", dest="router_card", help="CITER router card")
    p.add_argument("--window", type=int, default=SchedulerConfig().window,
                   help="SLM run-ahead drafts per step (k; the gateway's default)")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=16, help="sequences decoded together")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--engine", default="hf", choices=["hf", "vllm"],
        help="backend of both models (vllm: its own venv, make vllm-venv; routers that read "
        "logprobs:top8 only, e.g. --policy logprob)",
    )  # fmt: skip
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--dump", help="write one JSONL line per item (tokens, sources, scores)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument(
        "--data",
        help="a JSONL file instead of a built-in split: task items "
        "(each naming its verifier), or GSM8K / CommonsenseQA lines as given",
    )
    p.add_argument("--limit", type=int, default=None, help="first N items (default: all)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=MAX_NEW_TOKENS,
        help=f"completion tokens per item (default {MAX_NEW_TOKENS})",
    )
    p.add_argument("--families", default=None, help="comma-separated families (default: all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_sweep_args(p)
    p.set_defaults(func=_cmd_eval)


def _load_items(args: argparse.Namespace) -> list:
    from tasks.public import read_items
    from tasks.splits import load_split

    fams = args.families.split(",") if args.families else None
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.data:
        keep = set(fams) if fams else None  # any family the file names
        items = [it for it in read_items(args.data) if keep is None or it.family in keep]
        return items[: args.limit] if args.limit else items
    if args.split == "train" and args.limit is None:
        raise ValueError("--split train is an endless stream: pass --limit")
    return load_split(args.split, args.limit, fams)


def _routed_decoder(args: argparse.Namespace):  # -> ScheduledDecoder
    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.registry import make_router

    if args.window < 1:
        raise ValueError(f"--window must be >= 1, got {args.window}")
    if args.concurrency < 1:
        raise ValueError(f"--concurrency must be >= 1, got {args.concurrency}")
    pair = build_pair(PairConfig(args.slm, args.llm, args.device, args.dtype, engine=args.engine))
    router, thr = make_router(
        pair, args.policy, args.threshold, args.target_share, args.router_card
    )
    return ScheduledDecoder(pair, router, thr, args.window, args.concurrency, args.max_tokens,
                            "decoding")  # fmt: skip


def _set_threads(n: int) -> None:
    """Tiny models decode fastest on one thread; on a shared 2-core box two
    OpenMP threads spin against other processes and get ~50x slower."""
    import torch

    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def _cmd_eval(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from engines.reference import HFGenerateDecoder
    from tasks.evaluate import evaluate

    hf_logging.disable_progress_bar()  # errors stay one line; tqdm is for our own stages
    _set_threads(args.threads)

    if args.engine != "hf" and (args.model or args.sweep):
        flag = "--model" if args.model else "--sweep"
        raise ValueError(f"{flag} runs on the hf engine; with --engine {args.engine} pass "
                         "--slm/--llm (--policy slm or llm decodes one model)")  # fmt: skip
    items = _load_items(args)
    if args.sweep:
        return cmd_sweep(args, items)
    if args.model:
        decoder = HFGenerateDecoder(
            args.model, batch_size=args.batch_size, max_new_tokens=args.max_tokens
        )
        report, gens = evaluate(items, decoder)
    else:
        decoder = _routed_decoder(args)
        report, gens = evaluate(items, decoder)
        report.extra = {"engine": args.engine, "policy": args.policy,
                        "threshold": decoder.threshold,
                        "window": args.window, "concurrency": args.concurrency,
                        **decoder.stats()}  # fmt: skip
    if args.dump:
        from citer.routed import write_dump

        write_dump(args.dump, items, gens, report.correct)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(f"{'family':<10} {'accuracy':>8}")
        for fam, acc in report.per_family.items():
            print(f"{fam:<10} {acc:>8.3f}")
        print(f"{'all':<10} {report.accuracy:>8.3f}   n={report.n}")
        if report.extra:
            x = report.extra
            print(f"policy {x['policy']} threshold {x['threshold']:.4g}  LLM token share "
                  f"{x['llm_token_share']:.3f}  time share {x['time_share']}")  # fmt: skip
        print(
            f"tokens {report.tokens}  tokens/s {report.tokens_per_s:.1f}  "
            f"wall {report.wall_s:.1f} s"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="citer", description="token-level SLM/LLM routing gateway")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_eval(sub)
    bench_cmd.add_parser(sub)
    serve_cmd.add_parser(sub)
    add_train_router(sub)
    add_calibrate(sub)
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except (ModelFolderError, TaskDataError, ValueError) as e:
        print(f"citer {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
