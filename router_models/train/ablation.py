"""Do extra router inputs help? Offline comparison on held-out training items.

Feature sets (R2R combined the last two with the hidden state):
  topk              the SLM's top-k log-probs alone (all the vllm engine can give)
  hidden            SLM final hidden state (what CITER and the shipped card use)
  hidden+topk       ... plus the SLM's top-k log-probs at the position
  hidden+embed      ... plus the input embedding of the SLM's drafted token
  topk+class        the top-k log-probs plus the drafted token's class (when the
                    collection has a class table: training with token:class)

Each set trains the same MLP with the same loss on the final round's labels of
4/5 of the items and is scored on the other 1/5: ROC AUC for the LLM label and
the fraction of LLM-labelled rows caught when 20% of rows go to the LLM.
"""

from __future__ import annotations

from typing import Any

import torch

from router_models.token_class import one_hot
from router_models.train.collect import Collection
from router_models.train.labels import ROLLOUT
from router_models.train.train import FitConfig, auc, fit_router, rounded, scores


def feature_sets(coll: Collection, embed: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """name -> router inputs [N, D]; ``embed`` is the SLM's input embedding [vocab, H]."""
    sets = {
        "topk": coll.topk,
        "hidden": coll.hidden,
        "hidden+topk": torch.cat([coll.hidden, coll.topk], -1),
    }
    if embed is not None:
        sets["hidden+embed"] = torch.cat([coll.hidden, embed[coll.slm].float()], -1)
    if coll.token_classes is not None:
        sets["topk+class"] = torch.cat([coll.topk, one_hot(coll.token_classes, coll.slm)], -1)
    return sets


def recall_at_share(score: torch.Tensor, y: torch.Tensor, share: float) -> float:
    """Fraction of y == 1 rows among the top ``share`` of scores."""
    k = max(1, int(round(share * len(score))))
    top = torch.topk(score, k).indices
    pos = int((y == 1).sum())
    return float((y[top] == 1).sum()) / pos if pos else float("nan")


def feature_ablation(
    coll: Collection, labels: torch.Tensor, fit: FitConfig, embed: torch.Tensor | None
) -> dict[str, dict[str, Any]]:
    keep = labels != ROLLOUT
    held = (coll.item % 5 == 0) & keep
    fit_rows = (coll.item % 5 != 0) & keep
    if not bool(held.any()) or not bool(fit_rows.any()):
        raise ValueError("feature ablation needs at least 5 labelled items")
    out: dict[str, dict[str, Any]] = {}
    for name, x in feature_sets(coll, embed).items():
        model, _ = fit_router(x[fit_rows], labels[fit_rows], None, fit)
        s = scores(model, x[held])
        y = labels[held]
        out[name] = {
            "in_dim": int(x.shape[1]),
            "auc": rounded(auc(s, y)),
            "recall_at_20pct": rounded(recall_at_share(s, y, 0.2)),
        }
    return out
