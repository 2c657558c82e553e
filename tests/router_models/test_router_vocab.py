"""tokenizer_hash: blind to formatting, sensitive to any vocab change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from router_models.card import tokenizer_hash

TEXTS = ["the cat sat on the mat", "12 + 34 = 46", "a bat and a cat"] * 3
SPECIAL = ["<|pad|>", "<|bos|>", "<|end|>"]


def tiny_bpe(vocab_size: int = 60, special: list[str] = SPECIAL) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()[:20],
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS, trainer=trainer)
    return tok


def save(tok: Tokenizer, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def test_hash_ignores_formatting_and_accepts_file_or_folder(tmp_path: Path) -> None:
    folder = save(tiny_bpe(), tmp_path / "a")
    ref = tokenizer_hash(folder)
    assert len(ref) == 64 and int(ref, 16) >= 0
    assert tokenizer_hash(folder / "tokenizer.json") == ref
    d = json.loads((folder / "tokenizer.json").read_text())
    # Reindented, keys reordered (vocab map included), non-ASCII escaped.
    d["model"]["vocab"] = dict(reversed(list(d["model"]["vocab"].items())))
    pretty = json.dumps(dict(reversed(list(d.items()))), indent=7, ensure_ascii=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokenizer.json").write_text(pretty)
    assert pretty != (folder / "tokenizer.json").read_text()
    assert tokenizer_hash(tmp_path / "b") == ref


def test_hash_ignores_non_vocab_settings(tmp_path: Path) -> None:
    tok = tiny_bpe()
    ref = tokenizer_hash(save(tok, tmp_path / "a"))
    tok.normalizer = normalizers.NFKC()
    assert tokenizer_hash(save(tok, tmp_path / "b")) == ref


def test_hash_changes_with_the_vocab(tmp_path: Path) -> None:
    ref = tokenizer_hash(save(tiny_bpe(), tmp_path / "a"))
    assert tokenizer_hash(save(tiny_bpe(vocab_size=50), tmp_path / "b")) != ref
    # Same tokens, two ids swapped.
    d = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    vocab = d["model"]["vocab"]
    x, y = sorted(vocab, key=vocab.get)[-2:]
    vocab[x], vocab[y] = vocab[y], vocab[x]
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "tokenizer.json").write_text(json.dumps(d))
    assert tokenizer_hash(tmp_path / "c") != ref


def test_hash_changes_with_the_special_tokens(tmp_path: Path) -> None:
    tok = tiny_bpe()
    ref = tokenizer_hash(save(tok, tmp_path / "a"))
    tok.add_special_tokens(["<|user|>"])
    assert tokenizer_hash(save(tok, tmp_path / "b")) != ref
    # Same vocab, but one special token demoted to an ordinary added token.
    d = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    d["added_tokens"][2]["special"] = False
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "tokenizer.json").write_text(json.dumps(d))
    assert tokenizer_hash(tmp_path / "c") != ref


def test_missing_tokenizer_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tokenizer.json"):
        tokenizer_hash(tmp_path)
