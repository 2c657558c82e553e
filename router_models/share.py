"""Pick a routing threshold from a router card's calibration table."""

from __future__ import annotations

from router_models.card import RouterCard, RouterCardError


def threshold_for_share(card: RouterCard, target_share: float) -> float:
    """Threshold whose validation LLM share is closest to ``target_share``.

    Rule: sort the table by threshold and make the share non-increasing (running
    minimum, so a higher threshold never gives a higher share even if the
    measured table is noisy); then interpolate linearly between neighbouring
    points. Targets above the highest share give the lowest calibrated
    threshold, targets below the lowest share the highest. If a range of
    thresholds gives exactly the target, the highest one is returned (fewest
    LLM tokens for the same validation share).
    """
    if not 0.0 <= target_share <= 1.0:
        raise ValueError(f"target LLM share {target_share} must be in [0, 1]")
    if not card.calibration:
        raise RouterCardError(
            "router card has no calibration table: re-run calibration "
            "(citer train-router) or pass an explicit threshold"
        )
    pts = sorted(card.calibration, key=lambda c: (c.threshold, -c.llm_share))
    ts = [c.threshold for c in pts]
    shares: list[float] = []
    for c in pts:
        shares.append(min(c.llm_share, shares[-1]) if shares else c.llm_share)
    if target_share > shares[0] or len(pts) == 1:
        return ts[0]
    if target_share < shares[-1]:
        return ts[-1]
    for i in range(len(pts) - 2, -1, -1):  # from the high-threshold end
        lo, hi = shares[i + 1], shares[i]
        if lo <= target_share <= hi:
            if lo == target_share:
                return ts[i + 1]
            frac = (hi - target_share) / (hi - lo)  # hi > target > lo here
            return ts[i] + frac * (ts[i + 1] - ts[i])
    raise AssertionError("unreachable: target lies within [min share, max share]")
