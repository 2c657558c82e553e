"""Shared fixtures for router tests: tiny tensors, a tiny model pair, one torch thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from router_test_utils import HIDDEN, SLM_WEIGHTS, TOK_HASH, VOCAB, tiny_mlp

from router_models.card import save_card
from tasks.splits import load_split


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


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """SLM (16 wide, 1 layer) and LLM (32 wide, 2 layers) sharing a small BPE chat tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from demo.tokenizer import save_tokenizer, train_tokenizer

    root = tmp_path_factory.mktemp("pair")
    texts = [it.prompt_text + "\n" + it.reference for it in load_split("train", 200)]
    tok = train_tokenizer(texts, vocab_size=300)
    for name, hidden, layers, seed in (("slm", 16, 1, 1), ("llm", 32, 2, 2)):
        hf = save_tokenizer(tok, root / name)
        cfg = LlamaConfig(
            vocab_size=len(hf),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            bos_token_id=hf.bos_token_id,
            eos_token_id=hf.eos_token_id,
            pad_token_id=hf.pad_token_id,
            tie_word_embeddings=True,
        )
        torch.manual_seed(seed)
        LlamaForCausalLM(cfg).save_pretrained(root / name)
    return root / "slm", root / "llm"


@pytest.fixture(scope="module")
def loaded(pair):
    from engines.pair import PairConfig, build_pair

    p = build_pair(PairConfig(str(pair[0]), str(pair[1])))
    return p.slm, p.llm, p.tokenizer
