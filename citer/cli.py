"""The ``citer`` command line: ``citer eval`` today; serve, bench and
train-router join it as their issues land."""

from __future__ import annotations

import argparse
import json
import sys

from citer.modelcheck import ModelFolderError
from tasks.types import TaskDataError


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="decode a task split and report accuracy")
    p.add_argument("--model", help="one HF model folder, decoded alone (greedy)")
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--data", help="a JSONL file of items instead of a built-in split")
    p.add_argument("--limit", type=int, default=None, help="first N items (default: all)")
    p.add_argument("--families", default=None, help="comma-separated families (default: all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_eval)


def _load_items(args: argparse.Namespace) -> list:
    from tasks.splits import check_families, load_split
    from tasks.types import read_jsonl

    fams = args.families.split(",") if args.families else None
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.data:
        keep = set(check_families(fams)) if fams else None
        items = [it for it in read_jsonl(args.data) if keep is None or it.family in keep]
        return items[: args.limit] if args.limit else items
    if args.split == "train" and args.limit is None:
        raise ValueError("--split train is an endless stream: pass --limit")
    return load_split(args.split, args.limit, fams)


def _cmd_eval(args: argparse.Namespace) -> int:
    from citer.evaluate import HFGenerateDecoder, evaluate

    if not args.model:
        raise ValueError("citer eval needs --model PATH")
    items = _load_items(args)
    decoder = HFGenerateDecoder(args.model, batch_size=args.batch_size)
    report, _ = evaluate(items, decoder)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(f"{'family':<10} {'accuracy':>8}")
        for fam, acc in report.per_family.items():
            print(f"{fam:<10} {acc:>8.3f}")
        print(f"{'all':<10} {report.accuracy:>8.3f}   n={report.n}")
        print(
            f"tokens {report.tokens}  tokens/s {report.tokens_per_s:.1f}  "
            f"wall {report.wall_s:.1f} s"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="citer", description="token-level SLM/LLM routing gateway")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_eval(sub)
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except (ModelFolderError, TaskDataError, ValueError) as e:
        print(f"citer {args.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
