"""Paired accuracy differences between two real-pair routing configs, from the cache.

    python -m benchmarks.real_paired --dataset gsm8k \
        --vs citer:0.4226 confidence:0.0923 --vs citer:0.4226 llm

For each ``--vs A B``: the items both configs decoded, each one's right answers and LLM
token share there, and A - B in points with the paired bootstrap 95% interval (the one
the accuracy table uses against the LLM). Config names are the table's (``citer-s:t``,
not the cache's ``citer@<digest>:t``). Needs no model: the pair is the one in
``--pair``'s pair.json, or the cache's only pair when the pair is not built.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.real_accuracy import CARDS, card_paths, pair_digest
from benchmarks.real_accuracy_report import (
    card_names,
    collect,
    load_cache,
    names_file,
    paired_interval,
)


def cache_pair(rows: list[dict], pair_dir: Path) -> str:
    if (pair_dir / "pair.json").is_file():
        return pair_digest(pair_dir)
    pairs = {r["pair"] for r in rows}
    if len(pairs) != 1:
        raise SystemExit(f"no {pair_dir}/pair.json and the cache holds {len(pairs)} pairs")
    return pairs.pop()


def compare(got: dict[str, dict[str, dict]], a: str, b: str) -> str:
    """One table row: A vs B on the items both decoded."""
    for c in (a, b):
        if c not in got:
            raise SystemExit(f"no cached rows for {c!r}; cached: {', '.join(sorted(got))}")
    both = sorted(set(got[a]) & set(got[b]))
    if not both:
        raise SystemExit(f"{a} and {b} share no decoded items")
    ra, rb = ([got[c][i] for i in both] for c in (a, b))
    right = [sum(r["correct"] for r in rs) for rs in (ra, rb)]
    share = [sum(r["llm_tokens"] for r in rs) / max(1, sum(r["tokens"] for r in rs))
             for rs in (ra, rb)]  # fmt: skip
    lo, hi = paired_interval([r["correct"] for r in ra], [r["correct"] for r in rb])
    diff = 100 * (right[0] - right[1]) / len(both)
    return (f"| {a} | {b} | {len(both)} | {right[0]} ({share[0]:.1%}) | "
            f"{right[1]} ({share[1]:.1%}) | {diff:+.1f} | [{lo:+.1f}, {hi:+.1f}] |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--vs", nargs=2, action="append", required=True, metavar=("A", "B"))
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument(
        "--cache",
        nargs="+",
        default=["benchmarks/real/accuracy.jsonl"],
        help="one or more caches; rows pair up across them by item (e.g. the main "
        "cache's bf16 rows against benchmarks/real/int8/accuracy.jsonl's int8 ones)",
    )
    ap.add_argument("--cards", default=CARDS, help="name=card,... as in real_accuracy")
    args = ap.parse_args()
    caches = [Path(c) for c in args.cache]
    keyed: dict[tuple, dict] = {}
    for c in caches:
        for key, row in load_cache(c).items():
            if key in keyed:  # the same config decoded twice (another kernel, say)
                raise SystemExit(f"{key[2]} item {key[4]} is in more than one cache: "
                                 "compare those runs within one cache")  # fmt: skip
            keyed[key] = row
    rows = list(keyed.values())
    pair = cache_pair(rows, Path(args.pair))
    names: dict[str, str] = {}
    for c in caches:
        names |= card_names(card_paths(args), names_file(c))
    got = collect([r for r in rows if r["pair"] == pair], names)[args.dataset]
    print("| A | B | items | A right (LLM share) | B right (LLM share) | A - B, points | 95% CI |")
    print("|---|---|---|---|---|---|---|")
    for a, b in args.vs:
        print(compare(got, a, b))


if __name__ == "__main__":
    main()
