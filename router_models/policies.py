"""Training-free routing policies.

Each policy scores a whole batch of drafted positions in one vectorised call
(see ``router_models.base`` for the threshold rule: LLM iff ``score > threshold``).

- ``AlwaysSLM`` / ``AlwaysLLM``: constant scores 0.0 / 1.0; with the default
  threshold 0.5 they reproduce the single models exactly.
- ``RandomRouter``: a uniform score in [0, 1) fixed by (request seed, absolute
  position), so batching and the run-ahead window never change a decision.
  Expected LLM share = P(u > t) = 1 - t for a threshold t in [0, 1].
- ``ConfidenceRouter``: 1 - max softmax probability of the SLM (BiLD fallback).
- ``LogprobRouter``: the same score from the SLM's top-8 log-probs, which every engine
  gives (vLLM returns log-probs, not logits).
- ``EntropyRouter``: entropy of the SLM softmax / log(vocab), in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engines.seeds import mix64_np, position_bits_np
from router_models.base import FEATURE_LOGITS, FEATURE_TOPK, RouterFeatures


def uniform_per_position(seeds: list[int], positions: list[int], stream: int = 0) -> np.ndarray:
    """Uniform draws in [0, 1), one per (seed, position) pair; [n] float64.

    A pure function of (stream, seed, position): no generator state, so the
    same position gets the same value in any batch or run-ahead window.
    Seeds and positions must fit in int64 (negative seeds are allowed).
    """
    if len(seeds) != len(positions):
        raise ValueError(f"got {len(seeds)} seeds but {len(positions)} positions")
    salt = int(mix64_np(np.array([stream], dtype=np.int64).view(np.uint64))[0])
    bits = position_bits_np(np.asarray(seeds), np.asarray(positions), salt)  # [n] uint64
    # Top 53 bits -> exactly representable float64 in [0, 1).
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _probs(feats: RouterFeatures, who: str) -> torch.Tensor:
    """SLM softmax in float32; [n, vocab]."""
    if feats.logits is None:
        raise ValueError(f"{who} needs RouterFeatures.logits ({FEATURE_LOGITS!r}); got None")
    if feats.logits.dim() != 2 or feats.logits.shape[0] != len(feats):
        raise ValueError(
            f"{who}: logits must be [n={len(feats)}, vocab], got {tuple(feats.logits.shape)}"
        )
    return torch.softmax(feats.logits.detach().float(), dim=-1)


class _TrainingFree:
    """What every policy here shares: no router card, scores computed from ``features``
    (``constant_score`` None) unless a subclass fixes them, a default threshold."""

    name: str
    features: tuple[str, ...] = ()
    constant_score: float | None = None  # the score of every row, when known without features
    card = None  # training-free: no router card

    def __init__(self, threshold: float = 0.5) -> None:
        self.default_threshold = threshold


class AlwaysSLM(_TrainingFree):
    """Every token from the SLM (score 0.0 never exceeds a threshold >= 0)."""

    name = "slm"
    constant_score = 0.0

    def score(self, feats: RouterFeatures) -> list[float]:
        return [0.0] * len(feats)


class AlwaysLLM(_TrainingFree):
    """Every token from the LLM (score 1.0 exceeds any threshold < 1)."""

    name = "llm"
    # Known without features: the scheduler lets the LLM decode alone (no SLM pass).
    constant_score = 1.0

    def score(self, feats: RouterFeatures) -> list[float]:
        return [1.0] * len(feats)


class RandomRouter(_TrainingFree):
    """Uniform score per (row seed, absolute position); LLM share ~= 1 - threshold.

    ``seed`` selects an independent stream, so two RandomRouters with
    different seeds disagree while each stays reproducible.
    """

    name = "random"

    def __init__(self, threshold: float = 0.5, seed: int = 0) -> None:
        super().__init__(threshold)
        self.seed = seed

    def score(self, feats: RouterFeatures) -> list[float]:
        n = len(feats)
        if len(feats.seeds) != n or len(feats.positions) != n:
            raise ValueError(
                f"RandomRouter needs one seed and one position per row: {n} rows, "
                f"{len(feats.seeds)} seeds, {len(feats.positions)} positions"
            )
        return uniform_per_position(feats.seeds, feats.positions, self.seed).tolist()


class ConfidenceRouter(_TrainingFree):
    """score = 1 - max_v softmax(logits)_v, in [0, 1 - 1/vocab]."""

    name = "confidence"
    features: tuple[str, ...] = (FEATURE_LOGITS,)

    def score(self, feats: RouterFeatures) -> list[float]:
        p = _probs(feats, "ConfidenceRouter")  # [n, vocab]
        if p.shape[0] == 0:
            return []
        return (1.0 - p.amax(dim=-1)).clamp_(0.0, 1.0).tolist()


class LogprobRouter(_TrainingFree):
    """score = 1 - exp(top-1 log-prob) = 1 - max softmax probability, from FEATURE_TOPK."""

    name = "logprob"
    features: tuple[str, ...] = (FEATURE_TOPK,)

    def score(self, feats: RouterFeatures) -> list[float]:
        top = feats.topk_logprobs  # [n, TOPK], descending
        if top is None:
            raise ValueError(f"LogprobRouter needs RouterFeatures.topk_logprobs ({FEATURE_TOPK!r})")
        if top.dim() != 2 or top.shape[0] != len(feats):
            raise ValueError(
                f"LogprobRouter: topk_logprobs must be [n={len(feats)}, k], got {tuple(top.shape)}"
            )
        if top.shape[0] == 0:
            return []
        return (1.0 - top[:, 0].float().exp()).clamp_(0.0, 1.0).tolist()


class EntropyRouter(_TrainingFree):
    """score = H(softmax(logits)) / log(vocab), in [0, 1] (1 = uniform)."""

    name = "entropy"
    features: tuple[str, ...] = (FEATURE_LOGITS,)

    def score(self, feats: RouterFeatures) -> list[float]:
        p = _probs(feats, "EntropyRouter")  # [n, vocab]
        vocab = p.shape[-1]
        if p.shape[0] == 0:
            return []
        if vocab < 2:  # a one-token vocab has no uncertainty
            return [0.0] * p.shape[0]
        h = torch.special.entr(p).sum(dim=-1)  # [n] nats; entr(0) = 0
        return (h / math.log(vocab)).clamp_(0.0, 1.0).tolist()
