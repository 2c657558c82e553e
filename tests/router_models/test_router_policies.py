"""Training-free policies: batching, determinism, threshold monotonicity, values."""

from __future__ import annotations

import math

import pytest
import torch
from router_test_utils import make_feats, row

from router_models.base import FEATURE_TOPK, RouterFeatures, topk_logprobs
from router_models.policies import (
    AlwaysLLM,
    AlwaysSLM,
    ConfidenceRouter,
    EntropyRouter,
    LogprobRouter,
    RandomRouter,
    uniform_per_position,
)

POLICIES = [AlwaysSLM, AlwaysLLM, RandomRouter, ConfidenceRouter, EntropyRouter]


def llm_share(scores: list[float], threshold: float) -> float:
    return sum(s > threshold for s in scores) / len(scores)


def logits_feats(logits: list[list[float]]) -> RouterFeatures:
    t = torch.tensor(logits)
    n = t.shape[0]
    return RouterFeatures(token_ids=t.argmax(-1), logits=t, seeds=[0] * n, positions=list(range(n)))


@pytest.mark.parametrize("cls", POLICIES)
def test_batch_scores_equal_row_by_row(cls: type) -> None:
    router = cls()
    feats = make_feats(12, seed=3)
    batch = router.score(feats)
    rows = [router.score(row(feats, i))[0] for i in range(len(feats))]
    assert len(batch) == 12
    assert batch == pytest.approx(rows, abs=1e-6)


@pytest.mark.parametrize("cls", POLICIES)
def test_scores_in_unit_interval_and_empty_batch(cls: type) -> None:
    scores = cls().score(make_feats(64, seed=5))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert cls().score(make_feats(0)) == []


@pytest.mark.parametrize("cls", POLICIES)
def test_higher_threshold_never_raises_llm_share(cls: type) -> None:
    router = cls()
    thresholds = [-math.inf, -0.5, 0.0, 0.1, 0.25, 0.5, 0.5001, 0.75, 0.9, 1.0, 2.0]
    for seed in range(5):
        feats = make_feats(50, seed=seed)
        # Score afresh per threshold, as the scheduler would each step.
        shares = [llm_share(router.score(feats), t) for t in thresholds]
        assert all(a >= b for a, b in zip(shares, shares[1:], strict=False)), shares
        assert shares[0] == 1.0 and shares[-1] == 0.0


def test_degenerate_policies_at_default_threshold() -> None:
    feats = make_feats(20)
    slm, llm = AlwaysSLM(), AlwaysLLM()
    assert llm_share(slm.score(feats), slm.default_threshold) == 0.0
    assert llm_share(llm.score(feats), llm.default_threshold) == 1.0


def test_random_is_a_function_of_seed_and_position() -> None:
    router = RandomRouter()
    alone = RouterFeatures(
        token_ids=torch.zeros(4, dtype=torch.long), seeds=[7] * 4, positions=[10, 11, 12, 13]
    )
    # Same positions, other rows around them, other order, other window.
    mixed = RouterFeatures(
        token_ids=torch.zeros(8, dtype=torch.long),
        seeds=[3, 7, 9, 7, 7, 3, 7, 7],
        positions=[10, 13, 10, 11, 12, 11, 10, 14],
    )
    a = dict(zip(zip(alone.seeds, alone.positions, strict=True), router.score(alone), strict=True))
    m = dict(zip(zip(mixed.seeds, mixed.positions, strict=True), router.score(mixed), strict=True))
    for key, value in a.items():
        assert m[key] == value  # bit-identical, not approximately
    assert RandomRouter().score(alone) == router.score(alone)  # fresh instance, same draws
    assert m[(3, 10)] != m[(7, 10)] != m[(9, 10)]  # seed matters
    assert len(set(a.values())) == 4  # position matters
    assert RandomRouter(seed=1).score(alone) != router.score(alone)  # router stream matters


def test_random_share_is_one_minus_threshold() -> None:
    n = 20_000
    u = uniform_per_position(list(range(n)), [5] * n)
    assert u.min() >= 0.0 and u.max() < 1.0
    scores = u.tolist()
    for t in (0.1, 0.5, 0.8):
        assert llm_share(scores, t) == pytest.approx(1.0 - t, abs=0.02)


def test_random_needs_seeds_and_positions() -> None:
    feats = RouterFeatures(token_ids=torch.zeros(3, dtype=torch.long), seeds=[1, 2, 3])
    with pytest.raises(ValueError, match="position"):
        RandomRouter().score(feats)


def test_confidence_hand_computed() -> None:
    feats = logits_feats(
        [
            [0.0, 0.0, -math.inf, -math.inf],  # p = (.5, .5, 0, 0)
            [math.log(3.0), 0.0, -math.inf, -math.inf],  # p = (.75, .25, 0, 0)
            [0.0, 0.0, 0.0, 0.0],  # uniform over 4
            [0.0, -math.inf, -math.inf, -math.inf],  # certain
        ]
    )
    assert ConfidenceRouter().score(feats) == pytest.approx([0.5, 0.25, 0.75, 0.0], abs=1e-6)


def test_logprob_router_scores_like_confidence_from_top8_logprobs() -> None:
    feats = make_feats(12, seed=4)
    top = RouterFeatures(token_ids=feats.token_ids, topk_logprobs=topk_logprobs(feats.logits))
    assert LogprobRouter().score(top) == pytest.approx(ConfidenceRouter().score(feats), abs=1e-6)
    assert LogprobRouter.features == (FEATURE_TOPK,)  # engines without logits can serve it
    with pytest.raises(ValueError, match="topk_logprobs"):
        LogprobRouter().score(feats)  # logits alone are not what it reads


def test_entropy_hand_computed() -> None:
    feats = logits_feats(
        [
            [0.0, 0.0, -math.inf, -math.inf],  # H = ln 2, normalised by ln 4
            [math.log(3.0), 0.0, -math.inf, -math.inf],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, -math.inf, -math.inf, -math.inf],
        ]
    )
    h2 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    expected = [0.5, h2 / math.log(4.0), 1.0, 0.0]
    scores = EntropyRouter().score(feats)
    assert scores == pytest.approx(expected, abs=1e-6)
    assert not any(math.isnan(s) for s in scores)


def test_logit_policies_accept_half_precision() -> None:
    feats = make_feats(6, seed=2)
    half = RouterFeatures(token_ids=feats.token_ids, logits=feats.logits.to(torch.bfloat16))
    for cls in (ConfidenceRouter, EntropyRouter):
        ref = cls().score(RouterFeatures(token_ids=feats.token_ids, logits=half.logits.float()))
        assert cls().score(half) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("cls", [ConfidenceRouter, EntropyRouter])
def test_logit_policies_need_logits(cls: type) -> None:
    feats = RouterFeatures(token_ids=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="logits"):
        cls().score(feats)
