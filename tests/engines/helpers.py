"""Tiny routers satisfying router_models.base.Router, for scheduler tests."""

from __future__ import annotations


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
