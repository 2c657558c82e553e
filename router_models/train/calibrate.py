"""Calibration: router threshold -> LLM token share, measured on validation rows.

The share at threshold t is the fraction of teacher-forced validation
positions whose score exceeds t, i.e. the LLM token share routed decoding has
while it stays on the reference path. It is non-increasing in t by
construction, so ``router_models.card.threshold_for_share`` can invert it.
The per-round validation decodes of the training loop report how far the
share of real routed decoding lands from the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from router_models.card import CalibrationPoint

# Target shares the table is built at: dense where serving operates (0-50%).
DEFAULT_SHARES: tuple[float, ...] = tuple(
    [i / 100 for i in range(0, 50, 2)] + [i / 100 for i in range(50, 101, 5)]
)


def share_at(scores: torch.Tensor, threshold: float) -> float:
    """LLM share of rows at ``threshold``: mean(score > threshold)."""
    if scores.numel() == 0:
        raise ValueError("empty collection: no validation scores to calibrate on")
    return float((scores > threshold).double().mean())


def calibration_table(
    scores: torch.Tensor, shares: Sequence[float] = DEFAULT_SHARES
) -> list[CalibrationPoint]:
    """(threshold, measured share) points, thresholds ascending and shares non-increasing.

    For each target share q the threshold is the (1 - q) quantile of the
    scores; the share stored is the one measured at that threshold, not q.
    Scores are expected in [0, 1]: threshold 1.0 (share 0, SLM-only) is always
    included so every table reaches the SLM-only end.
    """
    s = scores.detach().double().flatten()
    if s.numel() == 0:
        raise ValueError("empty collection: no validation scores to calibrate on")
    qs = torch.tensor([1.0 - q for q in shares if 0.0 <= q <= 1.0], dtype=torch.float64)
    ts = torch.quantile(s, qs, interpolation="lower").tolist()
    # Just below the lowest score: every row goes to the LLM.
    ts.append(max(0.0, float(s.min()) - 1e-6))
    ts.append(1.0)
    # 6 significant digits: low thresholds (scores ~1e-6) keep their resolution in JSON.
    ts = sorted({float(f"{t:.6g}") for t in ts})
    out = [CalibrationPoint(t, share_at(s, t)) for t in ts]
    return sorted({(c.threshold, c.llm_share): c for c in out}.values(), key=lambda c: c.threshold)


def thresholds_for_shares(scores: torch.Tensor, targets: Sequence[float]) -> list[float]:
    """One threshold per target share: the (1 - q) quantile of this split's scores."""
    s = scores.detach().double().flatten()
    if s.numel() == 0:
        raise ValueError("empty collection: no validation scores to calibrate on")
    bad = [q for q in targets if not 0.0 <= q <= 1.0]
    if bad:
        raise ValueError(f"target LLM shares {bad} must lie in [0, 1]")
    qs = torch.tensor([1.0 - q for q in targets], dtype=torch.float64)
    return [float(t) for t in torch.quantile(s, qs, interpolation="lower")]
