"""Router interface shared by the scheduler, the engines and every policy.

Data flow of one routing call (one per scheduler step):

    SLM engine  --RouterFeatures (tensors, one row per drafted position)-->
    Router.score(features) -> list[float]   (one score per row)
    scheduler: route row i to the LLM  iff  score[i] > threshold

Threshold semantics (the only definition; every policy and caller uses it):
a score estimates how much a position needs the LLM (higher = more critical).
A position goes to the LLM iff ``score > threshold``, so raising the
threshold can never raise the LLM token share. ``threshold = 1.0`` with scores
in [0, 1] means SLM-only; ``threshold = -inf`` means LLM-only.

The scheduler never looks inside ``RouterFeatures``; it only hands the object
from the engine to the router, so it stays torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

# Feature names an engine can provide and a router card can require.
FEATURE_HIDDEN = "hidden:final"  # SLM final-layer hidden state (after final norm)
FEATURE_LOGITS = "logits"  # SLM next-token logits at the drafted position
FEATURE_TOKEN = "token"  # the drafted token id
FEATURE_TOKEN_CLASS = "token:class"  # one-hot class of the drafted token (token_class.py)
TOPK = 8  # log-probs per row in FEATURE_TOPK
FEATURE_TOPK = f"logprobs:top{TOPK}"  # SLM's TOPK largest next-token log-probs, descending
# Log-prob floor of FEATURE_TOPK: a grammar mask leaves fewer than TOPK tokens possible
# (-inf), and a router's inputs must stay finite.
LOGPROB_FLOOR = -100.0


def topk_logprobs(logits: torch.Tensor) -> torch.Tensor:
    """[n, vocab] logits -> [n, TOPK] float32 log-probs, largest first (FEATURE_TOPK)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.topk(min(TOPK, logp.shape[-1]), dim=-1).values.clamp_(min=LOGPROB_FLOOR)


@dataclass
class RouterFeatures:
    """One row per drafted position, for a whole batch of sequences.

    Row i describes the SLM's prediction of one drafted token: the hidden state
    and logits are those the SLM computed when it produced that token.
    """

    token_ids: torch.Tensor  # [n] int64, the SLM's drafted token
    logits: torch.Tensor | None = None  # [n, vocab] float, SLM next-token logits
    hidden: torch.Tensor | None = None  # [n, hidden] float, SLM final hidden state
    topk_logprobs: torch.Tensor | None = None  # [n, TOPK] float, SLM top log-probs, descending
    # Per-row identity, for deterministic per-position randomness:
    seeds: list[int] = field(default_factory=list)  # request seed of row i
    positions: list[int] = field(default_factory=list)  # absolute token position

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])


class Router(Protocol):
    """Scores a batch of drafted positions in one call."""

    name: str
    features: tuple[str, ...]  # which RouterFeatures fields must be filled
    default_threshold: float
    # The score of every row when it is known without features (always-SLM/-LLM):
    # the scheduler then lets the LLM decode alone. None for every other router.
    constant_score: float | None
    card: Any  # the router_models.card.RouterCard it was loaded from; None if none

    def score(self, feats: RouterFeatures) -> list[float]:
        """Return one score per row; higher means the LLM is more needed."""
        ...
