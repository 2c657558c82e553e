"""The class-weighted confidence experiment: weights from a decisive-positions JSON,
one weight per token id, and scores = (1 - max prob) x the drafted token's weight."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from benchmarks.class_router import ClassWeightedConfidence, class_weights, weight_table
from router_models.base import RouterFeatures


class _Tok:
    """Ids 0-2: a number, a word, punctuation."""

    texts = ["42", " dog", "."]

    def __len__(self) -> int:
        return len(self.texts)

    def batch_decode(self, ids: list[list[int]]) -> list[str]:
        return [self.texts[i[0]] for i in ids]


W = {"number": 0.5, "word": 0.1, "other": 0.2}


def test_class_weights_are_decisive_shares(tmp_path: Path) -> None:
    d = {c: {"decisive": k, "sampled": 40} for c, k in (("number", 20), ("word", 4), ("other", 8))}
    p = tmp_path / "decisive.json"
    p.write_text(json.dumps(d))
    assert class_weights(p) == {"number": 0.5, "word": 0.1, "other": 0.2}


def test_weight_table_covers_ids_past_the_tokenizer_as_other() -> None:
    want = torch.tensor([0.5, 0.1, 0.2, 0.2, 0.2])
    assert torch.equal(weight_table(_Tok(), 5, W), want)


def test_score_is_confidence_times_the_drafted_tokens_weight() -> None:
    router = ClassWeightedConfidence(weight_table(_Tok(), 3, W), threshold=0.05)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [1.0, 1e-9, 1e-9]]))
    feats = RouterFeatures(token_ids=torch.tensor([0, 1, 0]), logits=logits)
    s = router.score(feats)
    # the same uncertainty (max prob 0.5) scores 5x higher on a number than on a word
    assert abs(s[0] - 0.25) < 1e-6 and abs(s[1] - 0.05) < 1e-6 and s[2] < 1e-6
    assert router.score(RouterFeatures(token_ids=torch.zeros(0, dtype=torch.long),
                                       logits=torch.zeros(0, 3))) == []  # fmt: skip
