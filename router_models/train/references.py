"""The LLM's own greedy answers to the train items: its verdicts, or the references.

    train items --LLM alone, greedy, the serving scheduler (cached per item set)-->
      answer text per item
        verdicts  (``llm_check``)         the verifier on each answer: shortcut rule 2
                                          labels LLM only on items the LLM solves
        references (``references="llm"``) the items the LLM solves, each with its own
                                          answer as the reference (the rest dropped)

With the data's worked solutions as references, teacher forcing follows a human
path that neither model would write. With the LLM's answers it follows the LLM's
own path, so the shortcut labels a position LLM exactly where the SLM's argmax
leaves the path the LLM would take: the labelling of R2R (Fu et al., 2025, "R2R:
Efficiently Navigating Divergent Reasoning Paths with Small-Large Model Token
Routing"), which generates its routing labels from the large model's responses.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from router_models.policies import AlwaysLLM
from router_models.train.collect import cache_key, encode
from router_models.train.rollout import (
    ANSWER_MAX_TOKENS,
    RolloutConfig,
    answer_text,
    routed_generate,
)
from tasks.types import Item
from tasks.verify import extract_answer, is_correct

REFERENCES = ("data", "llm")  # where the train references come from (TrainConfig)


def check_verifiable(items: Sequence[Item], split: str) -> None:
    """Every item's own reference must pass the verifier, or rollouts cannot be judged."""
    if not items:
        raise ValueError(f"empty collection: the {split} items are empty")
    for it in items:
        if not is_correct(it.reference, it.answer, it.verifier):
            got = extract_answer(it.reference)
            raise ValueError(
                f"{split} item {it.id or '?'} ({it.family}) has no verifier for its answer: "
                f"the reference must end in 'The answer is {it.answer}.' (found {got!r}); "
                "routers are trained only on tasks with a checkable final answer"
            )


def llm_answers_cached(
    engines: tuple[Any, Any, Any], items: Sequence[Item], rc: RolloutConfig, cache_dir: Path
) -> list[str]:
    """The LLM-only greedy answer text per item, cached by the pair's weights and the
    items (``collect.cache_key``, as the collections are)."""
    slm, llm, tok = engines
    key = cache_key(slm.info.name, llm.info.name, items, 0)
    path = cache_dir / f"llm-answers-{key}-{ANSWER_MAX_TOKENS}.json"
    if path.is_file():
        got = json.loads(path.read_text(encoding="utf-8"))
        if len(got) == len(items):
            return [str(t) for t in got]
    outs, _ = routed_generate(
        slm, llm, tok, AlwaysLLM(), 0.5, [encode(tok, it)[0] for it in items],
        [ANSWER_MAX_TOKENS] * len(items), window=rc.window, concurrency=rc.concurrency,
        desc="LLM-only answers",
    )  # fmt: skip
    texts = [answer_text(tok, o.token_ids) for o in outs]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(texts), encoding="utf-8")
    return texts


def verdicts(items: Sequence[Item], texts: Sequence[str]) -> list[bool]:
    return [is_correct(t, it.answer, it.verifier) for it, t in zip(items, texts, strict=True)]


def llm_references(items: Sequence[Item], texts: Sequence[str]) -> list[Item]:
    """The items the LLM solves, each with the LLM's answer as its reference."""
    kept = [
        dataclasses.replace(it, reference=t)
        for it, t, ok in zip(items, texts, verdicts(items, texts), strict=True)
        if ok
    ]
    if not kept:
        raise ValueError(
            f"the LLM alone answers none of the {len(items)} train items correctly, so it "
            "gives no references: train on the data's references (--references data)"
        )
    return kept
