"""Fixed train / validation / test splits from fixed seeds.

Validation and test are small fixed lists; train is an endless seeded stream
that skips every prompt found in validation or test, so the test split never
trains anything. Item i of a split belongs to family ``families[i % len]``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from functools import lru_cache

from tasks.families import FAMILIES
from tasks.types import Item

SPLIT_SEEDS = {"train": 1000, "validation": 2000, "test": 3000}
EVAL_SIZE = 1000  # items in the validation and in the test split
SPLITS = tuple(SPLIT_SEEDS)


def check_families(families: Sequence[str] | None) -> tuple[str, ...]:
    fams = tuple(families) if families else tuple(FAMILIES)
    for f in fams:
        if f not in FAMILIES:
            raise ValueError(f"unknown task family '{f}'; known: {', '.join(FAMILIES)}")
    return fams


def _stream(split: str, families: tuple[str, ...]) -> Iterator[Item]:
    rng = random.Random(SPLIT_SEEDS[split])
    i = 0
    while True:
        fam = families[i % len(families)]
        prompt, ref, ans = FAMILIES[fam](rng)
        yield Item([{"role": "user", "content": prompt}], ref, ans, fam, f"{split}-{i}")
        i += 1


@lru_cache(maxsize=4)
def _held_out_prompts() -> frozenset[str]:
    out: set[str] = set()
    for split in ("validation", "test"):
        out.update(it.prompt_text for it in load_split(split))
    return frozenset(out)


def load_split(
    split: str, limit: int | None = None, families: Sequence[str] | None = None
) -> list[Item]:
    """The first ``limit`` items of a split (validation/test hold EVAL_SIZE)."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
    fams = check_families(families)
    if split == "train":
        if limit is None:
            raise ValueError("the train split is a stream: pass a limit")
        return list(_islice(train_stream(fams), limit))
    items = list(_islice(_stream(split, tuple(FAMILIES)), EVAL_SIZE))
    items = [it for it in items if it.family in fams]
    return items if limit is None else items[:limit]


def train_stream(families: Sequence[str] | None = None) -> Iterator[Item]:
    """Endless train items, none of whose prompts occur in validation or test."""
    held = _held_out_prompts()
    for it in _stream("train", check_families(families)):
        if it.prompt_text not in held:
            yield it


def _islice(it: Iterator[Item], n: int) -> Iterator[Item]:
    for k, x in enumerate(it):
        if k >= n:
            return
        yield x
