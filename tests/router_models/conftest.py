"""Shared fixtures for router tests: tiny tensors, one torch thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from router_test_utils import HIDDEN, SLM_WEIGHTS, TOK_HASH, VOCAB, tiny_mlp

from router_models.card import save_card


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)  # a training job shares the 2 CPU cores


@pytest.fixture
def card_dir(tmp_path: Path) -> Path:
    """A saved CITER card for hidden size 8 with a 5-point calibration table."""
    path = tmp_path / "router"
    save_card(
        path,
        tiny_mlp(),
        slm="tiny-slm",
        llm="tiny-llm",
        hidden_size=HIDDEN,
        vocab_size=VOCAB,
        tokenizer_hash=TOK_HASH,
        slm_weights=SLM_WEIGHTS,
        default_threshold=0.4,
        calibration=[
            {"threshold": 0.1, "llm_share": 0.8},
            {"threshold": 0.3, "llm_share": 0.5},
            {"threshold": 0.5, "llm_share": 0.5},
            {"threshold": 0.7, "llm_share": 0.2},
            {"threshold": 0.9, "llm_share": 0.0},
        ],
        training={"iterations": 2, "lambda": 0.1},
    )
    return path
