"""Cost-aware objective and the fit of the CITER MLP.

Objective. Decoding one answer with routing policy pi earns

    J(pi) = E[ 1{final answer correct} ] - lambda * E[ #tokens the LLM writes ]

(lambda: the cost of one LLM token in units of one correct answer; 0 <= lambda < 1).
At one position, with everything after it decoded by pi, the two actions are
worth  Q(slm) = P(correct | SLM token)  and  Q(llm) = P(correct | LLM token) - lambda.
The labels say which action wins: an ``LLM`` label marks a position where the
SLM's token loses the answer (Q(slm) = Q(llm) + lambda - 1), an ``SLM`` label one
where it does not (Q(slm) = Q(llm) + lambda). Routing a position away from its
label therefore costs a regret of

    label LLM, routed to the SLM:  1 - lambda      label SLM, routed to the LLM:  lambda

so, with p = P(LLM label | features), routing to the LLM pays iff
p * (1 - lambda) > (1 - p) * lambda, i.e. iff p > lambda.

Loss. The regret becomes a class-weighted binary cross-entropy on the router's
logit z (score s = sigmoid(z)):

    L = sum_i  m_i * [ (1 - lambda) * y_i * -log s_i + lambda * (1 - y_i) * -log(1 - s_i) ]
        / sum_i m_i * [ (1 - lambda) * y_i + lambda * (1 - y_i) ]

with y_i = 1 for LLM labels and m_i the row's sampling multiplicity (rollout rows
stand for every row they were sampled from). Its minimiser has
s / (1 - s) = p (1 - lambda) / ((1 - p) lambda), so s > 0.5 exactly when p > lambda:
the card's default threshold 0.5 is the lambda-optimal policy, and other
thresholds trade accuracy for LLM share along the same ordering (calibration).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from router_models.citer import CiterConfig, CiterMLP


@dataclass(frozen=True)
class FitConfig:
    cost_lambda: float = 0.2  # cost of one LLM token, in units of one correct answer
    width: int | None = None  # MLP width h; None = the SLM hidden size (as in the paper)
    dropout: float = 0.1
    epochs: int = 6
    batch_size: int = 512  # rows per Adam step
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0  # init, shuffling and dropout all derive from it

    def __post_init__(self) -> None:
        lam = self.cost_lambda
        if not (isinstance(lam, int | float) and math.isfinite(lam)) or lam < 0:
            raise ValueError(f"cost lambda={lam}: must be >= 0 (cost of one LLM token)")
        if lam >= 1:
            raise ValueError(
                f"cost lambda={lam}: must be < 1 (at >= 1 an LLM token costs more than a "
                "correct answer is worth, so the optimal router never calls the LLM)"
            )
        if self.width is not None and self.width < 1:
            raise ValueError(f"router width={self.width}: must be >= 1 (None: the SLM's size)")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(
                f"fit epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}: "
                "must be >= 1, >= 1 and > 0"
            )

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def class_weights(y: torch.Tensor, cost_lambda: float) -> torch.Tensor:
    """Regret of misrouting each row: (1 - lambda) for LLM labels, lambda for SLM; [N]."""
    return torch.where(y == 1, 1.0 - cost_lambda, cost_lambda).float()


def cost_aware_loss(
    logits: torch.Tensor, y: torch.Tensor, mult: torch.Tensor, cost_lambda: float
) -> torch.Tensor:
    """The module docstring's L for one batch; logits, y, mult: [B]."""
    w = class_weights(y, cost_lambda) * mult  # [B]
    bce = nn.functional.binary_cross_entropy_with_logits(logits, y.float(), reduction="none")
    return (w * bce).sum() / w.sum().clamp_min(1e-12)


def fit_router(
    x: torch.Tensor, y: torch.Tensor, mult: torch.Tensor | None, cfg: FitConfig
) -> tuple[CiterMLP, list[float]]:
    """Train a CiterMLP on rows x [N, D] with labels y [N] in {0, 1}; (model, loss per epoch).

    Deterministic for a given seed and thread count; the global RNG state is
    restored afterwards.
    """
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"empty collection: no labelled rows to train on (x {tuple(x.shape)})")
    if y.shape != (x.shape[0],) or not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("labels must be [N] with values 0 (SLM) or 1 (LLM)")
    mult = torch.ones(len(y)) if mult is None else mult.float()
    x = x.float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CiterMLP(
            CiterConfig(in_dim=x.shape[1], width=cfg.width or x.shape[1], dropout=cfg.dropout)
        )
        # Start at the weighted base rate, so early epochs learn the features, not the prior.
        w = class_weights(y, cfg.cost_lambda) * mult
        pos = float((w * y).sum() / w.sum().clamp_min(1e-12))
        with torch.no_grad():
            model.net[-1].bias.fill_(math.log(max(pos, 1e-6) / max(1 - pos, 1e-6)))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * math.ceil(len(y) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
        gen = torch.Generator().manual_seed(cfg.seed)
        model.train()
        losses: list[float] = []
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(y), generator=gen)
            total, seen = 0.0, 0
            for s in range(0, len(y), cfg.batch_size):
                b = perm[s : s + cfg.batch_size]
                loss = cost_aware_loss(model(x[b]), y[b], mult[b], cfg.cost_lambda)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(b)
                seen += len(b)
            losses.append(total / seen)
    model.eval()
    return model, losses


def rounded(x: float, digits: int = 4) -> float | None:
    """``x`` rounded for a JSON log; None when it is nan (e.g. AUC with one class)."""
    return None if math.isnan(x) else round(x, digits)


@torch.inference_mode()
def scores(model: CiterMLP, x: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    """sigmoid(logit) per row, in eval mode; [N] float32."""
    was = model.training
    model.eval()
    out = torch.cat(
        [torch.sigmoid(model(x[s : s + batch].float())) for s in range(0, len(x), batch)]
    )
    model.train(was)
    return out


def auc(score: torch.Tensor, y: torch.Tensor) -> float:
    """ROC AUC of ``score`` for the positive class y == 1 (ties count half); nan if one class."""
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = torch.argsort(score.double())
    s = score.double()[order]
    ranks = torch.empty(len(s), dtype=torch.float64)
    # average ranks over tied scores
    _, inv, counts = torch.unique_consecutive(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks[order] = avg[inv]
    r_pos = float(ranks[y == 1].sum())
    return (r_pos - pos * (pos + 1) / 2) / (pos * neg)
