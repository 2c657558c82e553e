"""An experiment, not a shipped policy: confidence weighted by the drafted token's class.

    score = (1 - max softmax prob) x w[class of the drafted token]

``w`` is the share of SLM-LLM divergences of that class that decided a GSM8K answer,
measured on TRAIN items by ``benchmarks.decisive_positions`` (number 0.525, word 0.10,
other 0.20 in ``benchmarks/real/decisive.json``). Confidence alone spends LLM tokens
where the SLM is unsure of a word, which rarely changes an answer; this tests, end to
end, whether spending them on numbers instead keeps more accuracy at the same share
(the premise of a router that reads the token's class). Thresholds come from
``benchmarks.real_thresholds`` like every other router's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from router_models.base import FEATURE_LOGITS, RouterFeatures
from router_models.token_class import CLASSES, class_table

NAME = "confidence-class"
WEIGHTS = "benchmarks/real/decisive.json"


def class_weights(path: str | Path = WEIGHTS) -> dict[str, float]:
    """Per class: decisive / sampled rollouts of a ``decisive_positions`` run."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    return {c: d[c]["decisive"] / d[c]["sampled"] for c in CLASSES}


def weight_table(tokenizer: Any, vocab: int, weights: dict[str, float]) -> torch.Tensor:
    """[vocab] float32: the class weight of every token id (ids past the tokenizer: other)."""
    per_class = torch.tensor([weights[c] for c in CLASSES], dtype=torch.float32)
    return per_class[class_table(tokenizer, vocab)]


class ClassWeightedConfidence:
    name = NAME
    features: tuple[str, ...] = (FEATURE_LOGITS,)  # token_ids come with every row
    constant_score: float | None = None
    card = None  # training-free (its weights are a measurement on train items)

    def __init__(self, table: torch.Tensor, threshold: float = 0.5) -> None:
        self.table = table  # [vocab] weight per token id
        self.default_threshold = threshold

    def score(self, feats: RouterFeatures) -> list[float]:
        if feats.logits is None:
            raise ValueError(f"{NAME} needs RouterFeatures.logits ({FEATURE_LOGITS!r})")
        if len(feats) == 0:
            return []
        conf = 1.0 - torch.softmax(feats.logits.detach().float(), dim=-1).amax(dim=-1)  # [n]
        return (conf * self.table[feats.token_ids.cpu()]).tolist()


def make(pair: Any, threshold: float | None = None) -> ClassWeightedConfidence:
    """The router for ``pair`` (its tokenizer; the SLM's vocabulary width)."""
    vocab = int(pair.slm.info.vocab_size)
    table = weight_table(pair.tokenizer, vocab, class_weights())
    return ClassWeightedConfidence(table, 0.5 if threshold is None else threshold)
