"""The shipped demo tokenizer: HF loading, round trip, chat template."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer

from demo.tokenizer import CHAT_TEMPLATE, train_tokenizer
from tasks.splits import load_split

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def test_loads_with_autotokenizer_and_has_special_tokens() -> None:
    tok = AutoTokenizer.from_pretrained(DEMO / "llm")
    assert tok.bos_token == "<|bos|>" and tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"
    assert {"<|system|>", "<|user|>", "<|assistant|>"} <= set(tok.all_special_tokens)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3


def test_round_trip_on_test_items() -> None:
    tok = AutoTokenizer.from_pretrained(DEMO / "llm")
    for it in load_split("test", 200):
        for text in (it.prompt_text, it.reference):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.decode(ids) == text


def test_digits_are_single_tokens() -> None:
    tok = AutoTokenizer.from_pretrained(DEMO / "llm")
    pieces = tok.convert_ids_to_tokens(tok("x 90817 y", add_special_tokens=False)["input_ids"])
    digits = [p.lstrip("Ġ") for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("90817")


def test_chat_template_renders_roles_and_generation_prompt() -> None:
    tok = AutoTokenizer.from_pretrained(DEMO / "llm")
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
    ]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|bos|><|system|>\nBe brief.<|end|>\n<|user|>\nWhat is 2 + 3?<|end|>\n<|assistant|>\n"
    )
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert ids[0] == tok.bos_token_id and tok.decode(ids) == text
    assert tok.convert_ids_to_tokens(ids).count("<|end|>") == 2


def test_slm_and_llm_share_one_tokenizer() -> None:
    a = json.loads((DEMO / "llm" / "tokenizer.json").read_text())
    b = json.loads((DEMO / "slm" / "tokenizer.json").read_text())
    assert a == b
    for m in ("llm", "slm"):
        assert AutoTokenizer.from_pretrained(DEMO / m).chat_template == CHAT_TEMPLATE


def test_tokenizer_training_is_deterministic() -> None:
    texts = [it.prompt_text + "\n" + it.reference for it in load_split("train", 1500)]
    a = train_tokenizer(texts, vocab_size=300).to_str()
    b = train_tokenizer(texts, vocab_size=300).to_str()
    assert a == b
