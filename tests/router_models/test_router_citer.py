"""The CITER MLP and its Router wrapper."""

from __future__ import annotations

import pytest
import torch
from router_test_utils import HIDDEN, make_feats, row, tiny_mlp
from torch import nn

from router_models.base import FEATURE_HIDDEN, FEATURE_LOGITS, FEATURE_TOPK, RouterFeatures
from router_models.citer import CiterConfig, CiterMLP, CiterRouter, input_dim


def test_mlp_layer_structure_and_shapes() -> None:
    model = CiterMLP(CiterConfig(in_dim=12, width=8, dropout=0.2))
    layers = list(model.net)
    kinds = [type(m) for m in layers]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Dropout, nn.Linear, nn.Linear]
    first, norm, _, drop, mid, head = layers
    assert (first.in_features, first.out_features) == (12, 16)  # in_dim -> 2h
    assert norm.normalized_shape == (16,)
    assert drop.p == 0.2
    assert (mid.in_features, mid.out_features) == (16, 8)  # 2h -> h
    assert (head.in_features, head.out_features) == (8, 1)  # h -> 1
    assert model(torch.randn(5, 12)).shape == (5,)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="dropout"):
        CiterConfig(in_dim=8, width=8, dropout=1.0)
    with pytest.raises(ValueError, match="width=0"):
        CiterConfig(in_dim=8, width=0)


def test_score_is_sigmoid_of_mlp_logit() -> None:
    model = tiny_mlp().eval()
    feats = make_feats(9, seed=1)
    with torch.no_grad():
        expected = torch.sigmoid(model(feats.hidden)).tolist()
    scores = CiterRouter(model).score(feats)
    assert len(scores) == 9
    assert all(0.0 < s < 1.0 for s in scores)
    assert scores == pytest.approx(expected, abs=1e-6)


def test_batch_scores_equal_row_by_row() -> None:
    router = CiterRouter(tiny_mlp(seed=4))
    feats = make_feats(10, seed=2)
    rows = [router.score(row(feats, i))[0] for i in range(len(feats))]
    assert router.score(feats) == pytest.approx(rows, abs=1e-6)


def test_dropout_never_active_while_scoring() -> None:
    model = tiny_mlp()  # dropout 0.5
    model.train()
    router = CiterRouter(model)
    feats = make_feats(32, seed=3)
    first, second = router.score(feats), router.score(feats)
    assert first == second
    assert model.training  # the trainer's mode is restored
    assert first == CiterRouter(tiny_mlp().eval()).score(feats)


def test_features_follow_router_device_and_dtype() -> None:
    model = tiny_mlp().to(torch.float64).eval()
    feats = make_feats(4, seed=6)
    as_half = RouterFeatures(token_ids=feats.token_ids, hidden=feats.hidden.to(torch.bfloat16))
    scores = CiterRouter(model).score(as_half)
    with torch.no_grad():
        ref = torch.sigmoid(model(as_half.hidden.to(torch.float64))).tolist()
    assert scores == pytest.approx(ref, abs=1e-6)


def test_missing_or_misshaped_hidden_is_refused() -> None:
    router = CiterRouter(tiny_mlp())
    feats = make_feats(3)
    with pytest.raises(ValueError, match="hidden"):
        router.score(RouterFeatures(token_ids=feats.token_ids, logits=feats.logits))
    wrong = RouterFeatures(token_ids=feats.token_ids, hidden=torch.randn(3, HIDDEN + 1))
    with pytest.raises(ValueError, match=f"{HIDDEN}"):
        router.score(wrong)


def test_unknown_input_features_are_refused() -> None:
    with pytest.raises(ValueError, match="topk"):
        CiterRouter(tiny_mlp(), features=(FEATURE_HIDDEN, "topk_logprobs"))
    with pytest.raises(ValueError, match=FEATURE_LOGITS):
        input_dim([FEATURE_LOGITS], hidden_size=HIDDEN)
    assert input_dim([FEATURE_HIDDEN], hidden_size=HIDDEN) == HIDDEN


def test_hidden_and_topk_inputs_concatenate_in_card_order() -> None:
    feats = make_feats(6, seed=3)
    feats.topk_logprobs = torch.log_softmax(torch.randn(6, 40), -1).topk(8).values
    names = (FEATURE_HIDDEN, FEATURE_TOPK)
    assert input_dim(names, hidden_size=HIDDEN) == HIDDEN + 8
    model = CiterMLP(CiterConfig(in_dim=HIDDEN + 8, width=HIDDEN)).eval()
    with torch.no_grad():
        want = torch.sigmoid(model(torch.cat([feats.hidden, feats.topk_logprobs], -1)))
    assert CiterRouter(model, features=names).score(feats) == pytest.approx(want.tolist(), abs=1e-6)
    feats.topk_logprobs = None  # an engine that did not fill the feature
    with pytest.raises(ValueError, match="logprobs:top8"):
        CiterRouter(model, features=names).score(feats)
