"""The drafted token's class as a CITER input: the class table, the one-hot columns,
the card that stores the table, and the engine features such a card asks for."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from router_test_utils import HIDDEN, TOK_HASH, VOCAB, make_feats, tiny_mlp

from router_models.base import FEATURE_HIDDEN, FEATURE_TOKEN, FEATURE_TOKEN_CLASS, FEATURE_TOPK
from router_models.card import CARD_WEIGHTS, RouterCardError, load_card, save_card
from router_models.citer import CiterRouter, assemble_inputs, engine_features, input_dim
from router_models.token_class import CLASSES, class_table, one_hot, token_class

FEATS = (FEATURE_HIDDEN, FEATURE_TOKEN_CLASS)


class _Tok:
    """12 ids: 0-3 numbers, 4-7 words, 8-11 other."""

    texts = ["1", " 20", "3.5", "1,000", " cat", "The", " is", "x", " =", ".", "\n", " $"]

    def __len__(self) -> int:
        return len(self.texts)

    def batch_decode(self, ids: list[list[int]]) -> list[str]:
        return [self.texts[i[0]] for i in ids]


def table() -> torch.Tensor:
    return class_table(_Tok(), VOCAB)  # ids 12-15 lie past the tokenizer: other


@pytest.mark.parametrize(("text", "cls"), [("12", "number"), (" 1,000", "number"),
                         (" apples", "word"), (" =", "other"), ("\n\n", "other"),
                         (" $5", "other")])  # fmt: skip
def test_token_class(text: str, cls: str) -> None:
    assert token_class(text) == cls


def test_class_table_and_one_hot() -> None:
    t = table()
    assert t.tolist() == [0] * 4 + [1] * 4 + [2] * 8
    x = one_hot(t, torch.tensor([0, 5, 13]))
    assert x.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match="outside the class table"):
        one_hot(t, torch.tensor([VOCAB]))


def test_inputs_append_three_class_columns_and_the_engine_fills_only_the_token() -> None:
    assert input_dim(FEATS, hidden_size=HIDDEN) == HIDDEN + len(CLASSES)
    feats = make_feats(6)
    x = assemble_inputs(feats, FEATS, table())
    assert x.shape == (6, HIDDEN + 3)
    assert torch.equal(x[:, HIDDEN:], one_hot(table(), feats.token_ids))
    with pytest.raises(ValueError, match="no token class table"):
        assemble_inputs(feats, FEATS)
    assert engine_features((FEATURE_TOPK, FEATURE_TOKEN_CLASS)) == (FEATURE_TOPK, FEATURE_TOKEN)
    router = CiterRouter(tiny_mlp(in_dim=HIDDEN + 3), features=FEATS, token_classes=table())
    assert router.features == (FEATURE_HIDDEN, FEATURE_TOKEN)  # what the scheduler asks for
    with pytest.raises(ValueError, match="needs a class table"):
        CiterRouter(tiny_mlp(in_dim=HIDDEN + 3), features=FEATS)


def _save(path: Path, **kw: object) -> None:
    save_card(path, tiny_mlp(in_dim=HIDDEN + 3), slm="s", llm="l", hidden_size=HIDDEN,
              vocab_size=VOCAB, tokenizer_hash=TOK_HASH, features=FEATS, **kw)  # type: ignore[arg-type]  # fmt: skip


def _load(path: Path, offered: tuple[str, ...] = (FEATURE_HIDDEN, FEATURE_TOKEN)) -> CiterRouter:
    return load_card(path, hidden_size=HIDDEN, tokenizer_hash=TOK_HASH, available_features=offered)


def test_card_round_trip_keeps_the_table_and_the_scores(tmp_path: Path) -> None:
    _save(tmp_path, token_classes=table())
    router = _load(tmp_path)
    assert router.token_classes is not None and torch.equal(router.token_classes, table())
    assert router.token_classes.dtype == torch.int64
    from safetensors.torch import load_file, save_file

    w = load_file(str(tmp_path / CARD_WEIGHTS))  # one byte per token id on disk
    assert w["token_classes"].dtype == torch.uint8
    w["token_classes"] = w["token_classes"].long()  # a card written before: int64, still loads
    save_file(w, str(tmp_path / CARD_WEIGHTS))
    assert torch.equal(_load(tmp_path).token_classes, table())  # type: ignore[arg-type]
    feats = make_feats(8, seed=3)
    want = CiterRouter(tiny_mlp(in_dim=HIDDEN + 3).eval(), features=FEATS, token_classes=table())
    assert router.score(feats) == want.score(feats)
    # the class only changes the score through its columns: same row, other token class
    a, b = make_feats(1, seed=5), make_feats(1, seed=5)
    a.token_ids[:] = 0  # a number
    b.token_ids[:] = 4  # a word
    assert router.score(a) != router.score(b)


def test_card_refuses_a_missing_table_and_an_engine_without_token_ids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class table goes with"):
        _save(tmp_path / "a")  # the feature without its table
    with pytest.raises(ValueError, match="vocab 16"):
        _save(tmp_path / "b", token_classes=torch.zeros(VOCAB + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in \[0, 256\)"):
        _save(tmp_path / "b", token_classes=torch.full((VOCAB,), 300, dtype=torch.long))
    _save(tmp_path / "c", token_classes=table())
    with pytest.raises(RouterCardError, match=r"needs features \['token'\]"):
        _load(tmp_path / "c", offered=(FEATURE_HIDDEN,))
    # a card whose weights file lost its table is inconsistent, not silently class-blind
    from safetensors.torch import load_file, save_file

    w = load_file(str(tmp_path / "c" / CARD_WEIGHTS))
    del w["token_classes"]
    save_file(w, str(tmp_path / "c" / CARD_WEIGHTS))
    with pytest.raises(RouterCardError, match="inconsistent"):
        _load(tmp_path / "c")
