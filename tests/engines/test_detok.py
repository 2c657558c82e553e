from __future__ import annotations

import pytest

from engines.detok import Detokenizer


@pytest.fixture(scope="module")
def tok(model_dirs):
    from engines.hf import load_tokenizer

    return load_tokenizer(str(model_dirs[0]))


def ids(tok, *pieces: str) -> list[int]:
    """One token per piece (pieces are vocab entries: chars or multi-char tokens)."""
    vocab = tok.get_vocab()
    return [vocab[p] for p in pieces]


def feed(det: Detokenizer, tokens: list[int]) -> tuple[list[str], bool]:
    out = []
    for t in tokens:
        text, stopped = det.add(t)
        out.append(text)
        if stopped:
            return out, True
    return out, False


@pytest.mark.parametrize(
    "pieces",
    [("x", "y", "STOP", "z"), ("x", "y", "ST", "OP", "z"), ("x", "y", "S", "T", "O", "P")],
)
def test_stop_string_is_cut_however_it_is_tokenized(tok, pieces: tuple[str, ...]) -> None:
    det = Detokenizer(tok, stop=("STOP",))
    out, stopped = feed(det, ids(tok, *pieces))
    assert stopped and "".join(out) == "xy"
    assert det.flush() == ""


def test_hold_back_then_release(tok) -> None:
    det = Detokenizer(tok, stop=("abc", "the end"))
    steps = [det.add(t)[0] for t in ids(tok, "x", "a", "b", "d")]
    assert steps == ["x", "", "", "abd"]  # "a", "ab" could start "abc"
    steps = [det.add(t)[0] for t in ids(tok, " ", "the", " ", "e")]
    assert steps == [" ", "", "", ""]  # "the e" may still become "the end"
    assert det.add(ids(tok, "n")[0]) == ("", False)
    assert det.add(ids(tok, "x")[0]) == ("the enx", False)
    assert det.flush() == ""


def test_earliest_stop_wins_and_special_tokens_are_skipped(tok) -> None:
    det = Detokenizer(tok, stop=("cd", "ab"))
    out, stopped = feed(det, ids(tok, "<|x|>", "q", "<eos>", "cd", "ab"))
    assert stopped and "".join(out) == "q"
    det = Detokenizer(tok, stop=("yz",))
    out, stopped = feed(det, ids(tok, "x", "y"))
    assert not stopped and "".join(out) == "x" and det.flush() == "y"


def test_partial_utf8_waits_for_the_whole_character(tmp_path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe = Tokenizer(models.BPE({c: i for i, c in enumerate(sorted(alphabet))}, []))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe)
    tokens = tok("é€!")["input_ids"]
    assert len(tokens) == 6  # 2 + 3 + 1 bytes
    det = Detokenizer(tok)
    out = [det.add(t)[0] for t in tokens]
    assert out == ["", "é", "", "", "€", "!"]
