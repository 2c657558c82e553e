"""Router cards: a trained router's weights plus what it needs to be used safely.

A card is a folder::

    router.safetensors   CiterMLP state dict (float32); cards reading token:class also
                         the class of every token id (``token_classes``, uint8)
    router.json          kind, features, model pair (slm, llm, hidden_size,
                         vocab_size, tokenizer_hash, slm_weights), MLP shape, score
                         convention, default threshold, calibration table
                         [{threshold, llm_share}] measured on validation data,
                         free-form training metadata

``load_card`` checks the card against the engine before any weight is used
and raises ``RouterCardError`` with a one-line message naming both values and
what to do; there is no silent fallback.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from engines.types import check_features
from router_models.base import FEATURE_HIDDEN, FEATURE_TOKEN_CLASS
from router_models.citer import CiterConfig, CiterMLP, CiterRouter, engine_features, input_dim
from router_models.vocab import tokenizer_hash

CARD_JSON = "router.json"
CARD_WEIGHTS = "router.safetensors"
CLASS_TABLE = "token_classes"  # [vocab] uint8 tensor in CARD_WEIGHTS of token:class cards
FORMAT_VERSION = 1
SCORE_CONVENTION = (
    "score = sigmoid(logit) = estimated probability that the LLM is needed at this "
    "position; route to the LLM iff score > threshold"
)
__all__ = [
    "CalibrationPoint",
    "RouterCard",
    "RouterCardError",
    "load_card",
    "read_card",
    "save_card",
    "tokenizer_hash",  # re-exported: the card's model-pair identity
]
_FIX = "train a router for this model pair (citer train-router) or pass the matching --slm"

DEFAULT_CARD = "models/demo/router"  # the shipped CITER router card (a folder)


class RouterCardError(ValueError):
    """A router card is missing, corrupt, or does not fit the serving models."""


@dataclass(frozen=True)
class CalibrationPoint:
    threshold: float
    llm_share: float  # llm-produced / all completion tokens on validation, in [0, 1]


@dataclass
class RouterCard:
    """Contents of ``router.json``."""

    kind: str  # "citer"
    features: tuple[str, ...]  # RouterFeatures inputs, in column order
    slm: str
    llm: str
    hidden_size: int  # SLM hidden size the router was trained on
    vocab_size: int
    tokenizer_hash: str  # tokenizer_hash() of the shared tokenizer
    model: dict[str, Any]  # CiterConfig.to_dict()
    slm_weights: str = ""  # weights_fingerprint() of the SLM; "" = not pinned (older cards)
    default_threshold: float = 0.5
    calibration: list[CalibrationPoint] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    score_convention: str = SCORE_CONVENTION
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "kind": self.kind,
            "features": list(self.features),
            "model_pair": {
                "slm": self.slm,
                "llm": self.llm,
                "hidden_size": self.hidden_size,
                "vocab_size": self.vocab_size,
                "tokenizer_hash": self.tokenizer_hash,
                "slm_weights": self.slm_weights,
            },
            "model": self.model,
            "score_convention": self.score_convention,
            "default_threshold": self.default_threshold,
            "calibration": [
                {"threshold": c.threshold, "llm_share": c.llm_share} for c in self.calibration
            ],
            "training": self.training,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RouterCard:
        """Parse ``router.json``; raises KeyError/TypeError/ValueError when malformed."""
        pair = d["model_pair"]
        return cls(
            kind=str(d["kind"]),
            features=tuple(str(f) for f in d["features"]),
            slm=str(pair["slm"]),
            llm=str(pair["llm"]),
            hidden_size=int(pair["hidden_size"]),
            vocab_size=int(pair["vocab_size"]),
            tokenizer_hash=str(pair["tokenizer_hash"]),
            slm_weights=str(pair.get("slm_weights", "")),
            model=dict(d["model"]),
            default_threshold=float(d["default_threshold"]),
            calibration=parse_calibration(d.get("calibration", [])),
            training=dict(d.get("training", {})),
            score_convention=str(d.get("score_convention", SCORE_CONVENTION)),
            format_version=int(d.get("format_version", FORMAT_VERSION)),
        )


def parse_calibration(
    table: Iterable[CalibrationPoint | Mapping[str, float]],
) -> list[CalibrationPoint]:
    """Validate a calibration table: finite thresholds, shares in [0, 1]."""
    out = []
    for row in table:
        if isinstance(row, CalibrationPoint):
            c = row
        else:
            c = CalibrationPoint(float(row["threshold"]), float(row["llm_share"]))
        if not math.isfinite(c.threshold) or not 0.0 <= c.llm_share <= 1.0:
            raise ValueError(f"bad calibration point {c}: need a finite threshold, share in [0, 1]")
        out.append(c)
    return out


def save_card(
    path: str | Path,
    model: CiterMLP,
    *,
    slm: str,
    llm: str,
    hidden_size: int,
    vocab_size: int,
    tokenizer_hash: str,
    slm_weights: str = "",
    features: Sequence[str] = (FEATURE_HIDDEN,),
    default_threshold: float = 0.5,
    calibration: Iterable[CalibrationPoint | Mapping[str, float]] = (),
    training: Mapping[str, Any] | None = None,
    token_classes: torch.Tensor | None = None,  # [vocab_size] class per id, for token:class
) -> RouterCard:
    """Write ``model`` and its description to the folder ``path``; returns the card."""
    want = input_dim(features, hidden_size=hidden_size)
    if model.cfg.in_dim != want:
        raise ValueError(
            f"router input width {model.cfg.in_dim} does not match features {list(features)} "
            f"of an SLM with hidden_size {hidden_size} (expected {want})"
        )
    if (FEATURE_TOKEN_CLASS in features) != (token_classes is not None):
        raise ValueError(f"a class table goes with {FEATURE_TOKEN_CLASS!r}, and only with it")
    if token_classes is not None and tuple(token_classes.shape) != (vocab_size,):
        raise ValueError(f"class table of shape {tuple(token_classes.shape)}, vocab {vocab_size}")
    if token_classes is not None and not bool(((token_classes >= 0) & (token_classes < 256)).all()):
        raise ValueError("class table: every class id must be in [0, 256) (stored as uint8)")
    card = RouterCard(
        kind=CiterRouter.name,
        features=tuple(features),
        slm=slm,
        llm=llm,
        hidden_size=hidden_size,
        vocab_size=vocab_size,
        tokenizer_hash=tokenizer_hash,
        slm_weights=slm_weights,
        model=model.cfg.to_dict(),
        default_threshold=float(default_threshold),
        calibration=parse_calibration(calibration),
        training=dict(training or {}),
    )
    text = json.dumps(card.to_json(), indent=2, allow_nan=False)  # fails before any write
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    weights = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    if token_classes is not None:
        weights[CLASS_TABLE] = token_classes.to("cpu", torch.uint8).contiguous()  # 3 classes
    # Write to temp names, then rename: a crash never leaves a half-written card file.
    save_file(weights, str(out / (CARD_WEIGHTS + ".tmp")))
    (out / (CARD_JSON + ".tmp")).write_text(text + "\n", encoding="utf-8")
    os.replace(out / (CARD_WEIGHTS + ".tmp"), out / CARD_WEIGHTS)
    os.replace(out / (CARD_JSON + ".tmp"), out / CARD_JSON)
    return card


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_card(path: str | Path) -> RouterCard:
    """Parse ``path/router.json`` without loading weights or checking the model pair."""
    file = Path(path) / CARD_JSON
    if not file.is_file():
        raise RouterCardError(f"router card {path}: missing file {file}")
    try:
        card = RouterCard.from_json(json.loads(file.read_text(encoding="utf-8")))
    except KeyError as e:
        raise RouterCardError(f"router card {path}: {file} lacks field {e}") from e
    except (ValueError, TypeError, AttributeError) as e:
        raise RouterCardError(f"router card {path}: cannot parse {file}: {_first_line(e)}") from e
    if card.format_version > FORMAT_VERSION:
        raise RouterCardError(
            f"router card {path} has format_version {card.format_version} but this citer reads "
            f"up to {FORMAT_VERSION}: upgrade citer or re-save the card"
        )
    return card


def load_card(
    path: str | Path,
    *,
    hidden_size: int,
    tokenizer_hash: str,
    available_features: Iterable[str],
    slm_weights: str = "",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> CiterRouter:
    """Load a CITER router card, checked against the serving SLM and engine.

    ``hidden_size``, ``tokenizer_hash`` and ``slm_weights`` (its
    ``weights_fingerprint``; "" skips that check) describe the SLM being served;
    ``available_features`` are the RouterFeatures the engine can fill. The
    returned router carries the card (``router.card``) for calibration.
    """
    card = read_card(path)
    if card.kind != CiterRouter.name:
        raise RouterCardError(
            f"router card {path} is of kind {card.kind!r} but only {CiterRouter.name!r} cards "
            "can be loaded: pass a card written by citer train-router"
        )
    pins = [("hidden_size", card.hidden_size, hidden_size),
            ("tokenizer hash", card.tokenizer_hash, tokenizer_hash)]  # fmt: skip
    if card.slm_weights and slm_weights:  # same shapes, other weights: another SLM
        pins.append(("SLM weights fingerprint", card.slm_weights, slm_weights))
    for what, want, got in pins:
        if want != got:
            raise RouterCardError(
                f"router card {path} expects {what} {want} but the SLM has {got}: {_FIX}"
            )
    try:
        needed = engine_features(card.features)
        check_features(f"citer ({path})", needed, "serving", available_features)
    except ValueError as e:
        raise RouterCardError(
            f"router card: {e}; or serve with an engine that provides them (--engine hf), "
            "train a card on what it gives (citer train-router --features ...), or pick a "
            "training-free router (--policy logprob reads only logprobs:top8)"
        ) from None
    try:
        cfg = CiterConfig.from_dict(card.model)
        want = input_dim(card.features, hidden_size=card.hidden_size)
    except (KeyError, TypeError, ValueError) as e:
        raise RouterCardError(
            f"router card {path}: bad model/features in {CARD_JSON}: {_first_line(e)}"
        ) from e
    if cfg.in_dim != want:
        raise RouterCardError(
            f"router card {path}: model in_dim {cfg.in_dim} but features {list(card.features)} "
            f"give {want}: the card is inconsistent, re-save it"
        )
    file = Path(path) / CARD_WEIGHTS
    if not file.is_file():
        raise RouterCardError(f"router card {path}: missing file {file}")
    model = CiterMLP(cfg)
    try:
        tensors = load_file(str(file), device="cpu")
        table = tensors.pop(CLASS_TABLE, None)  # uint8 (int64 in older cards)
        table = None if table is None else table.to(torch.int64)
        model.load_state_dict(tensors, strict=True)
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise RouterCardError(f"router card {path}: cannot load {file}: {_first_line(e)}") from e
    if (FEATURE_TOKEN_CLASS in card.features) != (table is not None):
        raise RouterCardError(
            f"router card {path}: feature {FEATURE_TOKEN_CLASS!r} and the {CLASS_TABLE!r} "
            f"table in {CARD_WEIGHTS} come together: the card is inconsistent, re-save it"
        )
    model.to(device=device, dtype=dtype).eval()
    return CiterRouter(model, features=card.features, threshold=card.default_threshold,
                       card=card, token_classes=table)  # fmt: skip
