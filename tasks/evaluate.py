"""Decode a task split and score it.

    items --decoder--> Generation per item --tasks.verify--> EvalReport

A decoder is any callable ``(items) -> list[Generation]``: the single-model
reference decoder (``engines.reference``, HF ``generate``), or the collaborative
scheduler.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tasks.types import Item
from tasks.verify import is_correct

MAX_NEW_TOKENS = 320  # longest demo test reference is ~250 tokens


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    sources: list[str] = field(default_factory=list)  # "slm" / "llm" per token, if routed
    scores: list[float] = field(default_factory=list)  # router score per token, if routed


Decoder = Callable[[Sequence[Item]], list[Generation]]


@dataclass
class EvalReport:
    n: int
    accuracy: float
    per_family: dict[str, float]
    tokens: int  # completion tokens generated (eos excluded)
    tokens_per_s: float
    wall_s: float
    correct: list[bool] = field(repr=False, default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)  # routing stats, timings

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "per_family": {k: round(v, 4) for k, v in self.per_family.items()},
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "wall_s": round(self.wall_s, 2),
        }
        d.update(self.extra)
        return d


def evaluate(items: Sequence[Item], decoder: Decoder) -> tuple[EvalReport, list[Generation]]:
    t0 = time.perf_counter()
    gens = decoder(items)
    wall = time.perf_counter() - t0
    correct = [
        is_correct(g.text, it.answer, it.verifier) for g, it in zip(gens, items, strict=True)
    ]
    by_fam: dict[str, list[bool]] = defaultdict(list)
    for it, ok in zip(items, correct, strict=True):
        by_fam[it.family].append(ok)
    tokens = sum(len(g.token_ids) for g in gens)
    report = EvalReport(
        n=len(items),
        accuracy=sum(correct) / max(1, len(items)),
        per_family={f: sum(v) / len(v) for f, v in sorted(by_fam.items())},
        tokens=tokens,
        tokens_per_s=tokens / wall if wall > 0 else 0.0,
        wall_s=wall,
        correct=correct,
    )
    return report, gens
