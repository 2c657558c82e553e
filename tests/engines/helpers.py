"""Tiny routers satisfying router_models.base.Router, for scheduler tests."""

from __future__ import annotations

import math


class ModRouter:
    """Deterministic mixed policy: LLM iff the drafted token id % 3 == 0."""

    name = "mod3"
    features: tuple[str, ...] = ()
    default_threshold = 0.5
    constant_score = None
    card = None

    def score(self, feats) -> list[float]:
        return [1.0 if t % 3 == 0 else 0.0 for t in feats.token_ids.tolist()]


class ConstRouter:
    """Always-SLM (score 0) or always-LLM (score 1) at the default threshold."""

    features: tuple[str, ...] = ()
    default_threshold = 0.5
    constant_score = None  # scored like any router, so both models run
    card = None

    def __init__(self, value: float) -> None:
        self.value = value
        self.name = "llm" if value > 0.5 else "slm"

    def score(self, feats) -> list[float]:
        return [self.value] * len(feats)


class ConfidenceRouter:
    """1 - max softmax prob; needs logits, and checks the hidden rows arrive too."""

    name = "conf"
    features: tuple[str, ...] = ("logits", "hidden:final")
    default_threshold = 0.5
    constant_score = None
    card = None

    def __init__(self) -> None:
        self.calls: list[int] = []  # rows per call

    def score(self, feats) -> list[float]:
        assert feats.hidden is not None and feats.hidden.shape[0] == len(feats)
        self.calls.append(len(feats))
        return (1.0 - feats.logits.softmax(-1).amax(-1)).tolist()


class Score(float):
    """A router score that equals another within float32 noise (1e-5): one position's
    score can come from a run-ahead draft row or from a row drafted again in a later
    step, two forwards whose sums round differently. NaN (no router) equals NaN."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, float):
            return NotImplemented
        if math.isnan(self) or math.isnan(other):
            return math.isnan(self) and math.isnan(other)
        return abs(float(self) - float(other)) <= 1e-5

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = float.__hash__
