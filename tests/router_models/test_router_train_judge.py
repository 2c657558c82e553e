"""Judging rule-2 rows by rollouts, with the rollout sample split by token class."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from citer.cli import main
from router_models.base import FEATURE_HIDDEN, FEATURE_TOKEN_CLASS
from router_models.card import load_card
from router_models.citer import CiterConfig, CiterMLP
from router_models.token_class import class_table
from router_models.train.collect import collect
from router_models.train.labels import LLM, ROLLOUT, SLM
from router_models.train.loop import LoopConfig, policy_threshold, run_rounds, sample_rollout_rows
from router_models.train.rollout import RolloutConfig
from router_models.train.train import FitConfig, scores
from router_models.vocab import tokenizer_hash
from tasks.splits import load_split

FEATS = (FEATURE_HIDDEN, FEATURE_TOKEN_CLASS)


def test_without_strata_the_sample_is_uniform_and_nests() -> None:
    labels = torch.tensor([ROLLOUT, SLM] * 10)  # rows 0, 2, ..., 18 need a rollout
    rows, mult = sample_rollout_rows(labels, 4, seed=3)
    need = list(range(0, 20, 2))
    assert len(rows) == 4 and set(rows) <= set(need) and rows == sorted(rows)
    assert mult[rows].tolist() == [2.5] * 4 and float(mult.sum()) == 4 * 2.5 + 16
    # a larger sample keeps the smaller one's rows (their rollouts are reused)
    assert set(rows) < set(sample_rollout_rows(labels, 7, seed=3)[0])
    assert rows != sample_rollout_rows(labels, 4, seed=4)[0]
    picks = Counter(r for s in range(2000) for r in sample_rollout_rows(labels, 4, seed=s)[0])
    assert set(picks) == set(need) and all(700 < n < 900 for n in picks.values())  # 4/10 each
    rows, mult = sample_rollout_rows(labels, 50, seed=3)
    assert rows == need and torch.equal(mult, torch.ones(20))  # all fit: weight 1


def test_strata_share_the_budget_and_weigh_each_row_for_its_own_class() -> None:
    labels = torch.tensor([ROLLOUT] * 12 + [SLM] * 4)
    strata = torch.tensor([0, 0] + [1] * 10 + [0] * 4)  # class 0: 2 rows to roll out, 1: 10
    rows, mult = sample_rollout_rows(labels, 4, seed=0, strata=strata)
    assert rows[:2] == [0, 1] and len(rows) == 4  # the rare class is never crowded out
    assert mult[[0, 1]].tolist() == [1.0, 1.0]
    assert mult[rows[2:]].tolist() == [5.0, 5.0]  # 10 rows of class 1, 2 rolled out


def test_judged_rule2_rows_are_rolled_out_not_labelled_llm(loaded, tmp_path: Path) -> None:
    train = collect(*loaded, load_split("train", 6))
    val = collect(*loaded, load_split("validation", 3))
    tok = loaded[2]
    train.token_classes = val.token_classes = class_table(tok, loaded[0].info.vocab_size)
    rule2 = (train.llm == train.ref) & (train.slm != train.ref)
    assert int(rule2.sum()) > 0  # the tiny random pair leaves the reference often
    loop = LoopConfig(rounds=1, max_rollouts=6, seed=0, judge_llm_rows=True)
    rc = RolloutConfig(max_tokens=6, slack=0, window=2, concurrency=8)
    lines: list[str] = []
    rounds = run_rounds(train, val, loaded, FitConfig(epochs=1, batch_size=256), loop, rc,
                        features=FEATS, log=lines.append)  # fmt: skip
    y = rounds[1].labels
    assert rounds[1].log["rollouts"] <= 6
    # no rule-2 row keeps the shortcut's LLM label unless a rollout gave it
    unsampled = rule2 & (y != ROLLOUT) & (y == LLM)
    assert int(unsampled.sum()) <= rounds[1].log["rollouts"]
    assert int((y[rule2] == ROLLOUT).sum()) > 0  # the rest left out of the loss
    assert '"rollout":' in lines[0]
    by_class = rounds[1].log["rollout_llm_by_class"]  # [share judged LLM, rows rolled out]
    assert sum(n for _, n in by_class.values()) == rounds[1].log["rollouts"]
    assert set(by_class) <= {"number", "word", "other"}
    assert all(0.0 <= share <= 1.0 for share, _ in by_class.values())


def test_train_router_cli_writes_a_token_class_card(pair, tmp_path: Path) -> None:
    rc = main(["train-router", "--slm", str(pair[0]), "--llm", str(pair[1]),
               "--train-items", "6", "--val-items", "3", "--val-decode-items", "0",
               "--rounds", "1", "--max-rollouts", "6", "--rollout-max-tokens", "6",
               "--epochs", "1", "--features", "hidden:final,token:class", "--judge-llm-rows",
               "--same-token-slm", "--rollout-compare", "--query-items", "0",
               "--no-baselines", "--no-llm-check",
               "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "card")])  # fmt: skip
    assert rc == 0
    router = load_card(tmp_path / "card", hidden_size=16, tokenizer_hash=tokenizer_hash(pair[0]),
                       available_features=("hidden:final", "token"))  # fmt: skip
    assert router.inputs == FEATS and router.features == ("hidden:final", "token")
    assert router.token_classes is not None
    assert router.token_classes.shape == (router.card.vocab_size,)
    report = json.loads((tmp_path / "work" / "train_report.json").read_text())
    assert report["labels"]["llm_rows_rolled_out"] is True
    assert report["labels"]["same_token_slm"] is True
    assert report["labels"]["rollout_compare"] is True
    r1 = report["rounds"][-1]  # the compared rollouts are logged per round
    assert 0 <= r1["llm_rescued"] <= r1["llm_forced"] <= r1["rollouts"]
    assert report["feature_ablation"]["topk+class"]["in_dim"] == 8 + 3


def test_rollouts_are_kept_per_row_for_a_crash_and_a_larger_sample(loaded, tmp_path: Path) -> None:
    train = collect(*loaded, load_split("train", 6))
    val = collect(*loaded, load_split("validation", 3))
    rc = RolloutConfig(max_tokens=6, slack=0, window=2, concurrency=8)
    fit, ckpt = FitConfig(epochs=1, batch_size=256), tmp_path / "rounds"

    def run(k: int) -> dict:
        loop = LoopConfig(rounds=1, max_rollouts=k, seed=0, judge_llm_rows=True,
                          rollout_compare=True)  # fmt: skip
        rounds = run_rounds(train, val, loaded, fit, loop, rc, features=(FEATURE_HIDDEN,),
                            ckpt_dir=ckpt, log=lambda _: None)  # fmt: skip
        return rounds[1].log

    first = run(4)
    log_file = ckpt / "round1-outcomes.jsonl"
    lines = log_file.read_text().splitlines()
    n_first = first["rollouts"] + first["llm_forced"]  # SLM-token + LLM-token rollouts
    assert first["rollouts_reused"] == 0 and len(lines) == 1 + n_first
    # A crash mid-round: the round's checkpoint never written, the last line torn.
    for f in ckpt.glob("round1.*"):
        f.unlink()
    log_file.write_text("\n".join(lines[:3]) + "\n" + lines[3][:9])
    assert run(4)["rollouts_reused"] == 2  # the two whole lines, not the torn one
    assert len(log_file.read_text().splitlines()) == 1 + n_first
    # A larger sample keeps the smaller one's rows: only the new rows are decoded.
    bigger = run(8)
    assert bigger["rollouts"] > first["rollouts"]
    assert bigger["rollouts_reused"] == n_first


def test_rollout_share_sets_the_policy_threshold_from_round_2() -> None:
    torch.manual_seed(0)
    model, x = CiterMLP(CiterConfig(in_dim=5, width=4)), torch.randn(400, 5)
    assert policy_threshold(model, x, 1, 0.25) == 0.5  # round 1 follows CITER-S at 0.5
    assert policy_threshold(model, x, 3, None) == 0.5
    thr = policy_threshold(model, x, 2, 0.25)
    share = float((scores(model, x) > thr).float().mean())
    assert abs(share - 0.25) <= 1 / 400 and thr != 0.5
    assert policy_threshold(model, x, 2, 0.1) > thr  # a smaller share, a higher threshold
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="rollout_share"):
            LoopConfig(rollout_share=bad)


def test_round_2_rolls_out_at_the_share_threshold(loaded, tmp_path: Path) -> None:
    train = collect(*loaded, load_split("train", 6))
    val = collect(*loaded, load_split("validation", 3))
    rc = RolloutConfig(max_tokens=6, slack=0, window=2, concurrency=8)
    fit = FitConfig(epochs=1, batch_size=256)

    def run(share: float | None, ckpt: Path) -> list:
        loop = LoopConfig(rounds=2, tol=0.0, max_rollouts=4, seed=0, rollout_share=share)
        return run_rounds(train, val, loaded, fit, loop, rc, features=(FEATURE_HIDDEN,),
                          ckpt_dir=ckpt, log=lambda _: None)  # fmt: skip

    at_half, at_share = run(None, tmp_path / "a"), run(0.3, tmp_path / "b")
    assert [r.log["rollout_threshold"] for r in at_half[1:]] == [0.5, 0.5]
    assert at_share[1].log["rollout_threshold"] == 0.5  # round 1 identical to the default
    assert torch.equal(at_half[1].labels, at_share[1].labels)
    x = train.inputs((FEATURE_HIDDEN,))
    expect = policy_threshold(at_share[1].model, x, 2, 0.3)
    assert at_share[2].log["rollout_threshold"] == round(expect, 4) != 0.5
    # the outcomes of a policy at another threshold are not reused
    key = (tmp_path / "b" / "round2-outcomes.jsonl").read_text().splitlines()[0]
    assert key != (tmp_path / "a" / "round2-outcomes.jsonl").read_text().splitlines()[0]
