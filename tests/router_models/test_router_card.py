"""Router cards: round trip, load-time checks, calibration lookup."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from router_test_utils import HIDDEN, SLM_WEIGHTS, TOK_HASH, VOCAB, make_feats, tiny_mlp

from router_models.base import FEATURE_HIDDEN, FEATURE_LOGITS, FEATURE_TOKEN
from router_models.card import (
    CARD_JSON,
    CARD_WEIGHTS,
    CalibrationPoint,
    RouterCard,
    RouterCardError,
    load_card,
    read_card,
    save_card,
)
from router_models.citer import CiterRouter
from router_models.share import threshold_for_share

ENGINE_FEATURES = (FEATURE_HIDDEN, FEATURE_LOGITS, FEATURE_TOKEN)


def load(path: Path, **over: object) -> CiterRouter:
    kw: dict[str, object] = dict(
        hidden_size=HIDDEN, tokenizer_hash=TOK_HASH, available_features=ENGINE_FEATURES
    )
    kw.update(over)
    return load_card(path, **kw)  # type: ignore[arg-type]


def edit_json(path: Path, change: dict) -> None:
    file = path / CARD_JSON
    d = json.loads(file.read_text())
    d.update(change)
    file.write_text(json.dumps(d))


def test_round_trip_gives_identical_scores(card_dir: Path) -> None:
    feats = make_feats(16, seed=9)
    before = CiterRouter(tiny_mlp().eval()).score(feats)  # same weights as the saved card
    router = load(card_dir)
    assert router.score(feats) == before  # exact: float32 weights stored as float32
    assert router.default_threshold == 0.4
    assert router.card is not None and router.card.slm == "tiny-slm"
    assert router.card.calibration[1] == CalibrationPoint(threshold=0.3, llm_share=0.5)
    assert router.card.training == {"iterations": 2, "lambda": 0.1}
    assert not router.model.training


def test_router_json_describes_the_model_pair(card_dir: Path) -> None:
    d = json.loads((card_dir / CARD_JSON).read_text())
    assert d["kind"] == "citer"
    assert d["features"] == [FEATURE_HIDDEN]
    assert d["model_pair"] == {
        "slm": "tiny-slm",
        "llm": "tiny-llm",
        "hidden_size": HIDDEN,
        "vocab_size": VOCAB,
        "tokenizer_hash": TOK_HASH,
        "slm_weights": SLM_WEIGHTS,
    }
    assert "score > threshold" in d["score_convention"]
    assert d["calibration"][0] == {"threshold": 0.1, "llm_share": 0.8}
    assert RouterCard.from_json(d) == read_card(card_dir)


def test_hidden_size_mismatch_names_both_values(card_dir: Path) -> None:
    with pytest.raises(RouterCardError) as err:
        load(card_dir, hidden_size=128)
    msg = str(err.value)
    assert f"hidden_size {HIDDEN}" in msg and "128" in msg and str(card_dir) in msg
    assert "citer train-router" in msg and "--slm" in msg
    assert isinstance(err.value, ValueError)


def test_tokenizer_hash_mismatch_names_both_values(card_dir: Path) -> None:
    other = "cd" * 32
    with pytest.raises(RouterCardError) as err:
        load(card_dir, tokenizer_hash=other)
    assert TOK_HASH in str(err.value) and other in str(err.value)


def test_a_retrained_slm_of_the_same_shape_is_refused(card_dir: Path) -> None:
    other = "12" * 32  # same hidden size and tokenizer, other weights
    with pytest.raises(RouterCardError) as err:
        load(card_dir, slm_weights=other)
    msg = str(err.value)
    assert f"SLM weights fingerprint {SLM_WEIGHTS}" in msg and other in msg
    assert "citer train-router" in msg
    assert load(card_dir, slm_weights=SLM_WEIGHTS).card is not None  # the SLM it was trained on
    assert load(card_dir, slm_weights="").card is not None  # caller cannot fingerprint: no check


def test_cards_from_before_the_fingerprint_load_on_any_slm(card_dir: Path) -> None:
    d = json.loads((card_dir / CARD_JSON).read_text())
    del d["model_pair"]["slm_weights"]
    (card_dir / CARD_JSON).write_text(json.dumps(d))
    assert read_card(card_dir).slm_weights == ""
    assert load(card_dir, slm_weights="12" * 32).card is not None


def test_features_the_engine_cannot_provide_are_refused(card_dir: Path) -> None:
    with pytest.raises(RouterCardError) as err:
        load(card_dir, available_features=[FEATURE_LOGITS, FEATURE_TOKEN])
    assert FEATURE_HIDDEN in str(err.value) and FEATURE_LOGITS in str(err.value)


def test_features_the_router_cannot_read_are_refused(card_dir: Path) -> None:
    edit_json(card_dir, {"features": [FEATURE_HIDDEN, "topk_logprobs:8"]})
    with pytest.raises(RouterCardError, match="topk_logprobs:8"):
        load(card_dir, available_features=[*ENGINE_FEATURES, "topk_logprobs:8"])


def test_wrong_kind_or_newer_format_is_refused(card_dir: Path) -> None:
    edit_json(card_dir, {"format_version": 99})
    with pytest.raises(RouterCardError, match="99"):
        load(card_dir)
    edit_json(card_dir, {"format_version": 1, "kind": "bert"})
    with pytest.raises(RouterCardError, match="'bert'"):
        load(card_dir)


@pytest.mark.parametrize(
    ("breakage", "named"),
    [
        (lambda p: (p / CARD_JSON).unlink(), CARD_JSON),
        (lambda p: (p / CARD_WEIGHTS).unlink(), CARD_WEIGHTS),
        (lambda p: (p / CARD_JSON).write_text('{"kind": "citer", '), CARD_JSON),
        (lambda p: (p / CARD_JSON).write_text('{"kind": "citer"}'), "model_pair"),
        (lambda p: (p / CARD_WEIGHTS).write_bytes(b"\x00garbage" * 10), CARD_WEIGHTS),
    ],
    ids=["no-json", "no-weights", "corrupt-json", "json-lacks-field", "corrupt-weights"],
)
def test_missing_or_corrupt_files_give_one_line_errors(card_dir: Path, breakage, named) -> None:
    breakage(card_dir)
    with pytest.raises(RouterCardError) as err:
        load(card_dir)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_weights_of_another_shape_are_refused(card_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "wide"
    save_card(
        other,
        tiny_mlp(in_dim=HIDDEN, width=2 * HIDDEN),
        slm="s",
        llm="l",
        hidden_size=HIDDEN,
        vocab_size=VOCAB,
        tokenizer_hash=TOK_HASH,
    )
    (card_dir / CARD_WEIGHTS).write_bytes((other / CARD_WEIGHTS).read_bytes())
    with pytest.raises(RouterCardError, match=CARD_WEIGHTS):
        load(card_dir)


def test_save_refuses_inconsistent_cards(tmp_path: Path) -> None:
    common = dict(slm="s", llm="l", vocab_size=VOCAB, tokenizer_hash=TOK_HASH)
    with pytest.raises(ValueError, match="hidden_size 16"):
        save_card(tmp_path / "a", tiny_mlp(), hidden_size=16, **common)  # type: ignore[arg-type]
    bad = [{"threshold": 0.5, "llm_share": 1.5}]
    with pytest.raises(ValueError, match="share"):
        save_card(tmp_path / "b", tiny_mlp(), hidden_size=HIDDEN, calibration=bad, **common)  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def card_with(table: list[tuple[float, float]]) -> RouterCard:
    return RouterCard(
        kind="citer",
        features=(FEATURE_HIDDEN,),
        slm="s",
        llm="l",
        hidden_size=HIDDEN,
        vocab_size=VOCAB,
        tokenizer_hash=TOK_HASH,
        model={},
        calibration=[CalibrationPoint(t, s) for t, s in table],
    )


def test_threshold_for_share_interpolates(card_dir: Path) -> None:
    card = read_card(card_dir)  # (0.1, .8) (0.3, .5) (0.5, .5) (0.7, .2) (0.9, 0)
    assert threshold_for_share(card, 0.35) == pytest.approx(0.6)
    assert threshold_for_share(card, 0.65) == pytest.approx(0.2)
    assert threshold_for_share(card, 0.5) == pytest.approx(0.5)  # plateau: highest threshold
    assert threshold_for_share(card, 0.8) == pytest.approx(0.1)
    assert threshold_for_share(card, 0.95) == pytest.approx(0.1)  # beyond table: nearest end
    assert threshold_for_share(card, 0.0) == pytest.approx(0.9)


def test_threshold_for_share_is_monotone_on_noisy_unsorted_tables() -> None:
    # Shares measured by real decoding can wiggle; 0.4 -> 0.45 is noise.
    card = card_with([(0.6, 0.1), (0.2, 0.4), (0.4, 0.45), (0.0, 0.9)])
    # Envelope: 0.0 -> .9, 0.2 -> .4, 0.4 -> .4 (clamped), 0.6 -> .1
    assert threshold_for_share(card, 0.4) == pytest.approx(0.4)
    assert threshold_for_share(card, 0.42) == pytest.approx(0.2 * 0.48 / 0.5)
    targets = [i / 100 for i in range(101)]
    ts = [threshold_for_share(card, s) for s in targets]
    assert all(a >= b for a, b in zip(ts, ts[1:], strict=False))  # more share, lower threshold
    assert all(0.0 <= t <= 0.6 for t in ts)


def test_threshold_for_share_errors() -> None:
    with pytest.raises(RouterCardError, match="calibration"):
        threshold_for_share(card_with([]), 0.3)
    with pytest.raises(ValueError, match="1.5"):
        threshold_for_share(card_with([(0.5, 0.5)]), 1.5)
    assert threshold_for_share(card_with([(0.5, 0.5)]), 0.5) == 0.5
    assert not math.isnan(threshold_for_share(card_with([(0.5, 0.5), (0.5, 0.2)]), 0.3))
