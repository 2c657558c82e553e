"""build_router: names, thresholds, card routers, feature checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from router_test_utils import HIDDEN, TOK_HASH, make_feats

from router_models.base import FEATURE_HIDDEN, FEATURE_LOGITS, FEATURE_TOKEN
from router_models.card import RouterCardError
from router_models.citer import CiterRouter
from router_models.policies import (
    AlwaysLLM,
    AlwaysSLM,
    ConfidenceRouter,
    EntropyRouter,
    RandomRouter,
)
from router_models.registry import build_router, router_names

ENGINE = dict(hidden_size=HIDDEN, tokenizer_hash=TOK_HASH)
ALL_FEATURES = (FEATURE_HIDDEN, FEATURE_LOGITS, FEATURE_TOKEN)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("slm", AlwaysSLM),
        ("llm", AlwaysLLM),
        ("random", RandomRouter),
        ("confidence", ConfidenceRouter),
        ("entropy", EntropyRouter),
    ],
)
def test_policies_by_name(name: str, cls: type) -> None:
    router, threshold = build_router(name)
    assert isinstance(router, cls) and router.name == name
    assert threshold == router.default_threshold == 0.5
    assert build_router(name, threshold=0.2)[1] == 0.2
    assert len(router.score(make_feats(5))) == 5


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        build_router("bert")
    names = ["slm", "llm", "random", "confidence", "logprob", "entropy", "citer"]
    for name in names:
        assert name in str(err.value)
    assert router_names() == sorted(names)


def test_policy_kwargs_reach_the_constructor() -> None:
    feats = make_feats(8)
    a, _ = build_router("random", seed=1)
    b, _ = build_router("random", seed=2)
    assert isinstance(a, RandomRouter) and a.seed == 1
    assert a.score(feats) != b.score(feats)


def test_citer_from_card(card_dir: Path) -> None:
    router, threshold = build_router(
        "citer", card=str(card_dir), available_features=ALL_FEATURES, **ENGINE
    )
    assert isinstance(router, CiterRouter)
    assert threshold == 0.4  # the card's default
    _, explicit = build_router(
        "citer", card=str(card_dir), threshold=0.9, available_features=ALL_FEATURES, **ENGINE
    )
    assert explicit == 0.9
    _, by_share = build_router(
        "citer", card=str(card_dir), target_share=0.35, available_features=ALL_FEATURES, **ENGINE
    )
    assert by_share == pytest.approx(0.6)  # interpolated from the card's calibration


def test_citer_needs_card_and_engine_facts(card_dir: Path) -> None:
    with pytest.raises(ValueError, match="card"):
        build_router("citer", available_features=ALL_FEATURES, **ENGINE)
    with pytest.raises(ValueError, match="tokenizer_hash"):
        build_router(
            "citer", card=str(card_dir), available_features=ALL_FEATURES, hidden_size=HIDDEN
        )
    with pytest.raises(ValueError, match="available_features"):
        build_router("citer", card=str(card_dir), **ENGINE)
    with pytest.raises(RouterCardError, match="32"):
        build_router(
            "citer", card=str(card_dir), available_features=ALL_FEATURES,
            hidden_size=32, tokenizer_hash=TOK_HASH,
        )  # fmt: skip


def test_policies_refuse_cards_shares_and_missing_features(card_dir: Path) -> None:
    with pytest.raises(ValueError, match="no card"):
        build_router("confidence", card=str(card_dir))
    with pytest.raises(ValueError, match="target_share"):
        build_router("random", target_share=0.3)
    with pytest.raises(ValueError, match=FEATURE_LOGITS):
        build_router("entropy", available_features=[FEATURE_HIDDEN, FEATURE_TOKEN])
    router, _ = build_router("slm", available_features=[])
    assert isinstance(router, AlwaysSLM)
    with pytest.raises(ValueError, match="either"):
        build_router("slm", threshold=0.1, target_share=0.1)
    with pytest.raises(ValueError, match="nan"):
        build_router("slm", threshold=float("nan"))
