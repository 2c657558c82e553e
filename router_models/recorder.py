"""A router that records other routers' scores while the SLM writes every token.

Decoding with it is SLM-only decoding (its scores are 0, its threshold 2.0: nothing
routes), and ``scores[name]`` holds every generated position's score from each wrapped
router: the on-policy score distribution that serving at a low LLM share sees, which
``citer calibrate`` and ``benchmarks.real_thresholds`` turn into thresholds.
"""

from __future__ import annotations

from typing import Any


class ScoreRecorder:
    name = "score-recorder"
    constant_score: float | None = None
    card = None
    default_threshold = 2.0  # above every score: nothing routes

    def __init__(self, routers: dict[str, Any]) -> None:
        self.routers = routers
        self.features = tuple(sorted({f for r in routers.values() for f in r.features}))
        self.scores: dict[str, list[float]] = {k: [] for k in routers}

    def score(self, feats: Any) -> list[float]:
        for k, r in self.routers.items():
            self.scores[k].extend(r.score(feats))
        return [0.0] * len(feats)
