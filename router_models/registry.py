"""Router registry: name -> class, and the one place a router is built.

    build_router("confidence", threshold=0.3)              -> (router, 0.3)
    build_router("citer", card="models/demo/router",
                 hidden_size=..., tokenizer_hash=...,
                 available_features=engine.features)       -> (router, card threshold)

Threshold precedence: explicit ``threshold`` > ``target_share`` looked up in
the card's calibration table > the card's default > the policy's default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from engines.types import check_features
from router_models.base import Router
from router_models.card import DEFAULT_CARD, load_card
from router_models.citer import CiterRouter
from router_models.policies import (
    AlwaysLLM,
    AlwaysSLM,
    ConfidenceRouter,
    EntropyRouter,
    LogprobRouter,
    RandomRouter,
)
from router_models.share import threshold_for_share

# A plain literal: importing this module builds nothing and loads no weights.
ROUTERS: dict[str, type] = {
    "slm": AlwaysSLM,
    "llm": AlwaysLLM,
    "random": RandomRouter,
    "confidence": ConfidenceRouter,
    "logprob": LogprobRouter,  # confidence from top-8 log-probs: the vllm engine's
    "entropy": EntropyRouter,
    "citer": CiterRouter,
}
CARD_ROUTERS = frozenset({"citer"})  # names that are built from a router card


def router_names() -> list[str]:
    return sorted(ROUTERS)


def build_router(
    name: str,
    *,
    card: str | None = None,
    threshold: float | None = None,
    target_share: float | None = None,
    available_features: Iterable[str] | None = None,
    **kw: Any,
) -> tuple[Router, float]:
    """Build router ``name`` and return it with the threshold to route with.

    ``available_features`` (the RouterFeatures the engine fills) is checked
    against what the router reads; it is required for card routers, which
    also need ``hidden_size`` and ``tokenizer_hash`` of the served SLM in
    ``kw`` (plus optional ``device``/``dtype``). Other ``kw`` go to the policy
    constructor (e.g. ``seed`` for "random").
    """
    if name not in ROUTERS:
        raise ValueError(f"unknown router {name!r}; valid names: {', '.join(router_names())}")
    if threshold is not None and target_share is not None:
        raise ValueError("pass either threshold or target_share, not both")
    if threshold is not None and math.isnan(threshold):
        raise ValueError("threshold must be a number, got nan")

    router: Router
    if name in CARD_ROUTERS:
        if card is None:
            raise ValueError(f"router {name!r} needs a router card: pass card=PATH (--router-card)")
        needed = ("hidden_size", "tokenizer_hash")
        lacking = [k for k in needed if k not in kw] + (
            ["available_features"] if available_features is None else []
        )
        if lacking:
            raise ValueError(f"router {name!r} needs {lacking} of the served SLM to check its card")
        loaded = load_card(card, available_features=available_features, **kw)
        router = loaded
        if target_share is not None:
            assert loaded.card is not None  # load_card always attaches it
            threshold = threshold_for_share(loaded.card, target_share)
    else:
        if card is not None:
            raise ValueError(f"router {name!r} is training-free and reads no card: drop {card}")
        if target_share is not None:
            raise ValueError(
                f"target_share needs a calibrated router card; router {name!r} has none "
                "(pass a threshold instead)"
            )
        router = ROUTERS[name](**kw)
        if available_features is not None:
            check_features(name, router.features, "serving", available_features)
    return router, router.default_threshold if threshold is None else float(threshold)


def make_router(
    pair: Any,
    policy: str,
    threshold: float | None = None,
    target_share: float | None = None,
    card: str | None = None,
) -> tuple[Any, float]:
    """``build_router`` for the pair being served: a card router is checked against the
    pair's SLM (hidden size, tokenizer hash, weights) and the features its engine
    fills. ``pair``: an ``engines.pair.Pair``."""
    kw: dict[str, Any] = {}
    if policy == "citer":
        kw = {"card": card or DEFAULT_CARD, "hidden_size": pair.slm.info.hidden_size,
              "tokenizer_hash": pair.tokenizer_hash, "slm_weights": pair.slm_weights}  # fmt: skip
    elif card is not None:
        raise ValueError(f"--router-card is only used with --policy citer, not {policy}")
    return build_router(
        policy,
        threshold=threshold,
        target_share=target_share,
        available_features=pair.slm.info.features,
        **kw,
    )
