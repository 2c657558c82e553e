"""Tiny routers satisfying router_models.base.Router, and assertions shared by engine tests."""

from __future__ import annotations

import math
from typing import Any


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


def assert_offsets_sample_as_steps(llm, ids: list[int], offsets: tuple[int, ...], sp) -> Any:
    """One step over ``ids`` sampling at ``offsets`` (seq 900, seed 7): each offset's token
    (and log-probs, if asked) is the one a step of its own ending there samples. Returns
    that step's output; seq 900 stays cached for the caller to check and free."""
    from engines.types import SeqWork

    out = llm.step([SeqWork(900, 0, ids, sp, seed=7, sample_offsets=offsets)])
    assert out.sampled is not None and len(out.sampled[0]) == len(offsets)
    for k, o in enumerate(offsets):  # the same position, reached by a step of its own
        alone = llm.step([SeqWork(901, 0, ids[: o + 1], sp, seed=7)])
        llm.free(901)
        assert out.sampled[0][k] == alone.tokens[0][0]
        if sp.logprobs is not None:
            got, want = out.sampled_logprobs[0][k], alone.logprobs[0][0]
            assert got.top[0][0] == want.top[0][0]
            assert abs(got.logprob - want.logprob) <= 1e-4
    return out


def assert_same_outputs(got: Any, want: Any, atol: float) -> None:
    """Two engines' per-sequence step outputs agree: tokens, samples and features
    (logits, hidden states, probes) within ``atol``."""
    import torch

    def close(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
        if a is None or b is None:
            return a is b
        return torch.allclose(a.float(), b.float(), atol=atol, rtol=0)

    for a, b in zip(got, want, strict=True):
        assert a.tokens == b.tokens
        assert close(a.features.logits, b.features.logits)
        assert close(a.features.hidden, b.features.hidden)
        assert (a.probes is None) == (b.probes is None)
        if a.probes is not None:
            assert close(a.probes.hidden, b.probes.hidden)
        assert a.sampled == b.sampled
