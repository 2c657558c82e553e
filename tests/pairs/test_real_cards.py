"""The real pair's shipped router cards, read without the pair: each parses, pins the
same pair, reads only features every engine gives, and defaults to its calibrated
threshold for the share it states (a card that serves every token by default fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_models.card import read_card
from router_models.share import threshold_for_share

CARDS = Path(__file__).resolve().parents[2] / "models" / "qwen2.5-coder"


@pytest.mark.parametrize("name", ["router", "router-s", "router-csqa"])
def test_shipped_card_defaults_to_its_calibrated_share(name: str) -> None:
    card = read_card(CARDS / name)
    ref = read_card(CARDS / "router")
    assert (card.tokenizer_hash, card.slm_weights) == (ref.tokenizer_hash, ref.slm_weights)
    assert card.features == ("logprobs:top8",)  # runs on the vllm engine too
    share = float(card.training.get("default_share", 0.2))
    assert 0.0 < share < 0.5
    assert card.default_threshold == pytest.approx(threshold_for_share(card, share), abs=1e-3)
