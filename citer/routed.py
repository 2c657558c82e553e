"""Collaborative decoding of task items through the real scheduler (the CLI's).

    engines.pair.build_pair + router_models.registry.make_router
        --> ScheduledDecoder (a Scheduler) --generate_batch--> Generations

Used by ``citer eval --slm --llm --policy`` and ``citer bench``; the gateway
builds the same objects in its lifespan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engines.async_engine import generate_batch
from engines.pair import Pair
from engines.scheduler import Scheduler, SchedulerConfig
from engines.stats import StepStats
from engines.types import (
    Request,
    RequestOutput,
    RoutingParams,
    SamplingParams,
)
from tasks.chat import chat_ids
from tasks.evaluate import MAX_NEW_TOKENS, Generation
from tasks.types import Item


class ScheduledDecoder:
    """Greedy decoding of items through one Scheduler; keeps its stats for reports."""

    def __init__(
        self, pair: Pair, router: Any, threshold: float, window: int, concurrency: int,
        max_tokens: int = MAX_NEW_TOKENS, progress: str | None = None,
    ) -> None:  # fmt: skip
        """``progress``: a bar of finished items under that name (stderr); None: silent."""
        self.pair, self.threshold, self.max_tokens = pair, threshold, max_tokens
        self.progress = progress
        self.sched = Scheduler(
            pair.slm, pair.llm, router, pair.tokenizer,
            SchedulerConfig(window=window, max_batch=concurrency, seed=0),
        )  # fmt: skip
        self.outputs: list[RequestOutput] = []

    def __call__(self, items: Sequence[Item]) -> list[Generation]:
        rp = RoutingParams(threshold=self.threshold)
        # Seed i for item i: greedy tokens ignore it, but per-position random routing
        # must differ between items, or every item gets the same LLM positions.
        reqs = [
            Request(
                f"{it.id or i}",
                chat_ids(self.pair.tokenizer, it.messages),
                SamplingParams(max_tokens=self.max_tokens, temperature=0.0, seed=i),
                rp,
            )
            for i, it in enumerate(items)
        ]
        with tqdm(
            total=len(reqs), desc=self.progress, unit="item", disable=self.progress is None
        ) as bar:
            self.outputs = generate_batch(self.sched, reqs, lambda _: bar.update())
        eos = self.sched.eos_ids
        gens = []
        for o in self.outputs:
            n = len(o.token_ids) - (1 if o.token_ids and o.token_ids[-1] in eos else 0)
            gens.append(Generation(o.text, o.token_ids[:n], o.sources[:n], o.scores[:n]))
        return gens

    def stats(self) -> dict[str, object]:
        """LLM token share and where the time went, over the last call."""
        slm = sum(o.stats.slm_tokens for o in self.outputs)
        llm = sum(o.stats.llm_tokens for o in self.outputs)
        t: StepStats = self.sched.totals
        total = t.slm_s + t.router_s + t.llm_s + t.sched_s
        share = {k: round(v / total, 4) if total else 0.0 for k, v in
                 (("slm", t.slm_s), ("router", t.router_s), ("llm", t.llm_s),
                  ("scheduler", t.sched_s))}  # fmt: skip
        return {
            "llm_token_share": round(llm / max(1, slm + llm), 4),
            "slm_tokens": slm,
            "llm_tokens": llm,
            "llm_calls": t.llm_calls,
            "steps": getattr(t, "steps", 0),
            "time_share": share,
            "time_s": {
                k: round(v, 3)
                for k, v in (
                    ("slm", t.slm_s),
                    ("router", t.router_s),
                    ("llm", t.llm_s),
                    ("scheduler", t.sched_s),
                )
            },  # fmt: skip
        }


def write_dump(path: str, items: Sequence[Item], gens: Sequence[Generation],
               correct: Sequence[bool]) -> None:  # fmt: skip
    """One JSONL line per item: what was generated and who wrote each token."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for it, g, ok in zip(items, gens, correct, strict=True):
            row = {"id": it.id, "family": it.family, "answer": it.answer, "correct": ok,
                   "text": g.text, "token_ids": g.token_ids, "sources": g.sources,
                   "scores": [round(s, 4) for s in g.scores]}  # fmt: skip
            f.write(json.dumps(row) + "\n")
