"""The decisive-positions measurement: the AUC it reports and the per-class sample of
off-path rows (a collection-shaped stand-in, no models)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from benchmarks.decisive_positions import auc, sample_rows


def test_auc_counts_ties_half_and_needs_both_classes() -> None:
    assert auc([0.9, 0.1], [True, False]) == 1.0
    assert auc([0.1, 0.9], [True, False]) == 0.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.3, 0.4], [True, True]) is None


class _Tok:
    """Token id -> text: 1 a number, 2 a word, 3 punctuation."""

    def decode(self, ids: list[int]) -> str:
        return {1: "7", 2: " cat", 3: ","}[ids[0]]


def test_sample_rows_takes_only_off_path_rows_per_class_and_is_seeded() -> None:
    # rows 0-5: the SLM's argmax (slm) against the reference (ref); rows 1 and 4 stay on it
    coll = SimpleNamespace(
        slm=torch.tensor([1, 1, 2, 2, 3, 3]), ref=torch.tensor([9, 1, 9, 9, 3, 9])
    )
    rows = sample_rows(coll, _Tok(), per_class=5, seed=0)
    assert rows == {"number": [0], "word": [2, 3], "other": [5]}
    one = sample_rows(coll, _Tok(), per_class=1, seed=0)
    assert len(one["word"]) == 1 and one == sample_rows(coll, _Tok(), per_class=1, seed=0)
