"""The CITER router: a small MLP on the SLM's final hidden state (and, by
default for trained cards, the SLM's top-8 next-token log-probs).

    features (RouterFeatures) --assemble_inputs--> x [n, in_dim]
    CiterMLP: Linear(in_dim, 2h) - LayerNorm(2h) - ReLU - Dropout
              - Linear(2h, h) - Linear(h, 1)          -> logit [n]
    score = sigmoid(logit) = estimated P(this position needs the LLM)

``h`` (``width``) is the SLM hidden size in the paper. ``in_dim`` equals ``h``
while the only input is ``hidden:final``; ``logprobs:top8`` (R2R found the
combination better) widens ``in_dim`` by 8 without changing the MLP's shape.
An engine that cannot expose hidden states (vLLM) can serve a card trained on
``logprobs:top8`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from router_models.base import (
    FEATURE_HIDDEN,
    FEATURE_TOKEN,
    FEATURE_TOKEN_CLASS,
    FEATURE_TOPK,
    TOPK,
    RouterFeatures,
)
from router_models.token_class import CLASSES, one_hot

# Input features this implementation can assemble, in the order they may be
# concatenated. A card naming anything else is refused at load time.
SUPPORTED_FEATURES: tuple[str, ...] = (FEATURE_HIDDEN, FEATURE_TOPK, FEATURE_TOKEN_CLASS)


@dataclass(frozen=True)
class CiterConfig:
    """Shape of the router MLP; stored verbatim in the card's ``model`` field."""

    in_dim: int  # router input width (= SLM hidden size for hidden:final only)
    width: int  # h: the MLP's inner widths are 2h and h
    dropout: float = 0.1  # only active while training

    def __post_init__(self) -> None:
        if self.in_dim < 1 or self.width < 1:
            raise ValueError(f"CiterConfig: in_dim={self.in_dim}, width={self.width} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"CiterConfig: dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CiterConfig:
        return cls(in_dim=int(d["in_dim"]), width=int(d["width"]), dropout=float(d["dropout"]))


class CiterMLP(nn.Module):
    """x [n, in_dim] -> logit [n]; sigmoid(logit) = P(LLM needed)."""

    def __init__(self, cfg: CiterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.width
        self.net = nn.Sequential(
            nn.Linear(cfg.in_dim, 2 * h),
            nn.LayerNorm(2 * h),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(2 * h, h),
            nn.Linear(h, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)  # [n, in_dim] -> [n, 1] -> [n]


def _check_supported(features: Sequence[str]) -> None:
    unknown = [f for f in features if f not in SUPPORTED_FEATURES]
    if unknown:
        raise ValueError(
            f"CITER router cannot read features {unknown}; supported: {list(SUPPORTED_FEATURES)}"
        )
    if not features:
        raise ValueError("CITER router needs at least one input feature")


def input_dim(features: Sequence[str], *, hidden_size: int) -> int:
    """Width of ``assemble_inputs(feats, features)`` for an SLM of ``hidden_size``."""
    _check_supported(features)
    widths = {FEATURE_HIDDEN: hidden_size, FEATURE_TOPK: TOPK, FEATURE_TOKEN_CLASS: len(CLASSES)}
    return sum(widths[f] for f in features)


def engine_features(features: Sequence[str]) -> tuple[str, ...]:
    """The RouterFeatures an engine must fill for these router inputs."""
    return tuple(FEATURE_TOKEN if f == FEATURE_TOKEN_CLASS else f for f in features)


def assemble_inputs(
    feats: RouterFeatures, features: Sequence[str], token_classes: torch.Tensor | None = None
) -> torch.Tensor:
    """Concatenate the named features of every row; [n, sum of feature widths].

    The order of ``features`` is the column order, so training and serving
    must use the same list (the card stores it). ``token_classes`` ([vocab] class
    index per id) is needed for ``token:class`` only.
    """
    blocks: list[torch.Tensor] = []
    fields = {FEATURE_HIDDEN: feats.hidden, FEATURE_TOPK: feats.topk_logprobs}
    for name in features:
        if name == FEATURE_TOKEN_CLASS:
            if token_classes is None:
                raise ValueError(f"CITER router reads {name!r} but has no token class table")
            # beside the other inputs, on the device the engine left them (CUDA or CPU)
            blocks.append(one_hot(token_classes, feats.token_ids).to(feats.token_ids.device))
        elif name in fields:
            block = fields[name]  # [n, hidden] or [n, TOPK]
            if block is None:
                raise ValueError(f"CITER router needs {name!r}; the engine did not fill it")
            blocks.append(block.float())
        else:
            raise ValueError(
                f"CITER router cannot read feature {name!r}; supported: {list(SUPPORTED_FEATURES)}"
            )
    if not blocks:
        raise ValueError("CITER router needs at least one input feature")
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)


class CiterRouter:
    """Router wrapper: one batched, gradient-free MLP call per scheduler step."""

    name = "citer"
    constant_score: float | None = None  # scores come from the MLP

    def __init__(
        self,
        model: CiterMLP,
        *,
        features: Sequence[str] = (FEATURE_HIDDEN,),
        threshold: float = 0.5,
        card: Any = None,  # the router_models.card.RouterCard it was loaded from
        token_classes: torch.Tensor | None = None,  # [vocab] class per id, for token:class
    ) -> None:
        _check_supported(features)
        if FEATURE_TOKEN_CLASS in features and token_classes is None:
            raise ValueError(f"a CITER router reading {FEATURE_TOKEN_CLASS!r} needs a class table")
        self.model = model
        self.inputs: tuple[str, ...] = tuple(features)  # input columns, in the card's order
        self.features: tuple[str, ...] = engine_features(features)  # what the engine fills
        self.token_classes = token_classes
        self.default_threshold = threshold
        self.card = card  # set when loaded from a router card (calibration lives there)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def probs(self, feats: RouterFeatures) -> torch.Tensor:
        """P(LLM needed) per row; [n] float32 on the router's device."""
        x = assemble_inputs(feats, self.inputs, self.token_classes)
        in_dim = self.model.cfg.in_dim
        if x.dim() != 2 or x.shape[0] != len(feats) or x.shape[1] != in_dim:
            raise ValueError(
                f"CITER router expects inputs [n={len(feats)}, {in_dim}], got {tuple(x.shape)}"
            )
        was_training = self.model.training
        self.model.eval()  # dropout off, whatever a trainer left behind
        try:
            with torch.inference_mode():
                logits = self.model(x.to(device=self.device, dtype=self.dtype))  # [n]
                return torch.sigmoid(logits.float())
        finally:
            self.model.train(was_training)

    def score(self, feats: RouterFeatures) -> list[float]:
        if len(feats) == 0:
            return []
        return self.probs(feats).cpu().tolist()
