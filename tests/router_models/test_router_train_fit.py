"""Cost-aware objective, router fit, calibration and the card written from them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from router_models.base import RouterFeatures
from router_models.card import load_card
from router_models.share import threshold_for_share
from router_models.train.calibrate import calibration_table, share_at, thresholds_for_shares
from router_models.train.train import (
    FitConfig,
    auc,
    class_weights,
    cost_aware_loss,
    fit_router,
    scores,
)

FAST = FitConfig(epochs=3, batch_size=256, lr=5e-3, dropout=0.0)


def two_blobs(n: int, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Label 1 rows centred at +1, label 0 rows at -1 (separable up to noise)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.3).long()
    x = torch.randn(n, dim, generator=g) * 0.7 + (2 * y[:, None] - 1)
    return x, y


@pytest.mark.parametrize(
    ("lam", "match"),
    [(-0.1, "cost lambda=-0.1: must be >= 0"), (1.0, "must be < 1"), (math.nan, "must be >= 0")],
)
def test_bad_lambda_is_refused(lam: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FitConfig(cost_lambda=lam)


def test_loss_is_the_regret_weighted_bce() -> None:
    logits, y = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1, 0, 0])
    mult = torch.tensor([1.0, 2.0, 1.0])
    lam = 0.2
    assert class_weights(y, lam).tolist() == pytest.approx([0.8, 0.2, 0.2])
    w = torch.tensor([0.8, 0.4, 0.2])
    bce = torch.tensor([math.log(2), math.log(1 + math.exp(2)), math.log(1 + math.exp(-1))])
    want = float((w * bce).sum() / w.sum())
    assert float(cost_aware_loss(logits, y, mult, lam)) == pytest.approx(want, rel=1e-5)


def test_minimiser_routes_to_the_llm_iff_p_exceeds_lambda() -> None:
    # Featureless rows: the fit can only learn the weighted base rate
    # s = p(1-lam) / (p(1-lam) + (1-p) lam); with p = 0.3, lam = 0.2: s = 0.632 > 0.5.
    y = torch.tensor([1] * 300 + [0] * 700)
    x = torch.zeros(len(y), 4)
    for lam, want in ((0.2, 0.24 / 0.38), (0.5, 0.3)):
        cfg = FitConfig(cost_lambda=lam, epochs=10, batch_size=100, dropout=0.0)
        model, _ = fit_router(x, y, None, cfg)
        s = float(scores(model, x[:1]))
        assert s == pytest.approx(want, abs=0.03)
        assert (s > 0.5) == (0.3 > lam)


def test_fit_separates_classes_and_is_deterministic() -> None:
    x, y = two_blobs(3000)
    state = torch.random.get_rng_state()
    a, losses = fit_router(x, y, None, FAST)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    b, _ = fit_router(x, y, None, FAST)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    xt, yt = two_blobs(1000, seed=1)
    assert auc(scores(a, xt), yt) > 0.97
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="empty collection"):
        fit_router(x[:0], y[:0], None, FAST)


def test_auc_reference_values() -> None:
    assert auc(torch.tensor([0.1, 0.9]), torch.tensor([0, 1])) == 1.0
    assert auc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == 0.5
    assert math.isnan(auc(torch.tensor([0.1, 0.9]), torch.tensor([1, 1])))


def test_calibration_is_monotone_and_inverts() -> None:
    s = torch.rand(5000, generator=torch.Generator().manual_seed(3)) ** 3
    table = calibration_table(s)
    ts = [c.threshold for c in table]
    shares = [c.llm_share for c in table]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))
    assert shares[-1] == 0.0 and ts[-1] == 1.0 and shares[0] == 1.0
    for c in table:
        assert c.llm_share == share_at(s, c.threshold)
    for q, th in zip((0.1, 0.25, 0.5), thresholds_for_shares(s, (0.1, 0.25, 0.5)), strict=True):
        assert share_at(s, th) == pytest.approx(q, abs=0.002)
    with pytest.raises(ValueError, match="empty collection"):
        calibration_table(torch.zeros(0))


def test_card_round_trip_scores_identically(tmp_path: Path) -> None:
    from router_models.card import save_card

    x, y = two_blobs(2000)
    model, _ = fit_router(x, y, None, FAST)
    table = calibration_table(scores(model, x))
    save_card(
        tmp_path / "card",
        model,
        slm="s",
        llm="l",
        hidden_size=6,
        vocab_size=10,
        tokenizer_hash="ab" * 32,
        calibration=table,
        training={"cost_lambda": 0.2},
    )
    router = load_card(
        tmp_path / "card",
        hidden_size=6,
        tokenizer_hash="ab" * 32,
        available_features=("hidden:final",),
    )
    feats = RouterFeatures(torch.zeros(50, dtype=torch.long), hidden=x[:50])
    assert router.score(feats) == scores(model, x[:50]).tolist()
    assert router.card is not None and router.card.calibration == table
    th = threshold_for_share(router.card, 0.2)
    assert share_at(scores(model, x), th) == pytest.approx(0.2, abs=0.02)
