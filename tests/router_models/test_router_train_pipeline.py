"""The training pipeline on a tiny random pair: collection, rounds, CLI, sweep, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from citer.cli import main
from router_models.card import load_card
from router_models.train.collect import batches, collect, collect_cached
from router_models.train.labels import ROLLOUT
from router_models.train.loop import LoopConfig, run_rounds
from router_models.train.references import verdicts
from router_models.train.rollout import RolloutConfig
from router_models.train.train import FitConfig
from router_models.vocab import tokenizer_hash
from tasks.splits import load_split
from tasks.types import Item, write_jsonl

TINY_FIT = FitConfig(epochs=2, batch_size=256)
TINY_ROLLOUT = RolloutConfig(max_tokens=6, slack=0, window=2, concurrency=8)


@pytest.fixture(scope="module")
def trained(pair, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``citer train-router`` run once on the tiny pair; returns its root folder."""
    root = tmp_path_factory.mktemp("trained")
    rc = main(
        [
            "train-router",
            "--slm",
            str(pair[0]),
            "--llm",
            str(pair[1]),
            "--out",
            str(root / "card"),
            "--work-dir",
            str(root / "work"),
            "--train-items",
            "12",
            "--val-items",
            "6",
            "--val-decode-items",
            "2",
            "--val-shares",
            "0.2",
            "--rounds",
            "2",
            "--max-rollouts",
            "6",
            "--rollout-max-tokens",
            "6",
            "--epochs",
            "2",
            "--query-items",
            "4",
        ]
    )
    assert rc == 0
    return root


def test_collection_is_the_models_teacher_forced_prediction(loaded, pair) -> None:
    from transformers import AutoModelForCausalLM

    slm, llm, tok = loaded
    items = load_split("validation", 3)
    c = collect(slm, llm, tok, items, batch_size=2)
    assert len(c) == sum(len(a) for a in c.answer_ids) and c.n_items == 3
    assert c.ref.tolist() == [t for a in c.answer_ids for t in a]
    assert c.answer_ids[0][-1] == tok.eos_token_id
    model = AutoModelForCausalLM.from_pretrained(pair[0]).eval()
    ids = c.prompt_ids[1] + c.answer_ids[1]
    with torch.inference_mode():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    n_p = len(c.prompt_ids[1])
    rows = (c.item == 1).nonzero().squeeze(-1)
    want = out.logits[0, n_p - 1 : len(ids) - 1]  # row t predicts answer token t
    assert c.slm[rows].tolist() == want.argmax(-1).tolist()
    assert torch.allclose(
        c.hidden[rows], out.hidden_states[-1][0, n_p - 1 : len(ids) - 1], atol=1e-4
    )
    assert bool((c.entropy >= 0).all() and (c.entropy <= 1).all())
    assert slm.num_caches() == 0 and llm.num_caches() == 0


def test_batches_bound_items_and_tokens() -> None:
    assert batches([5, 1, 3, 9], batch_size=2, max_tokens=100) == [[1, 2], [0, 3]]
    assert batches([5, 1, 3, 9], batch_size=8, max_tokens=9) == [[1, 2, 0], [3]]
    assert batches([20, 1], batch_size=8, max_tokens=9) == [[1], [0]]  # too long: alone


def test_collection_rows_do_not_depend_on_the_token_budget(loaded) -> None:
    items = load_split("validation", 3)
    a = collect(*loaded, items)
    b = collect(*loaded, items, max_tokens=1)  # one item per teacher-forced batch
    assert torch.equal(a.ref, b.ref) and torch.equal(a.slm, b.slm) and torch.equal(a.llm, b.llm)
    assert torch.allclose(a.topk, b.topk, atol=1e-4)
    assert torch.allclose(a.hidden, b.hidden, atol=1e-4)


def test_collection_cache_round_trip(loaded, tmp_path: Path) -> None:
    items = load_split("validation", 2)
    a, hit_a = collect_cached(*loaded, items, tmp_path, "validation")
    b, hit_b = collect_cached(*loaded, items, tmp_path, "validation")
    assert (hit_a, hit_b) == (False, True)
    assert torch.equal(a.hidden, b.hidden) and a.answer_ids == b.answer_ids
    _, hit_c = collect_cached(*loaded, load_split("validation", 3), tmp_path, "validation")
    assert not hit_c  # other items, other key
    with pytest.raises(ValueError, match="empty collection"):
        collect_cached(*loaded, [], tmp_path, "validation")


def test_rounds_are_deterministic_and_resume(loaded, tmp_path: Path) -> None:
    train = collect(*loaded, load_split("train", 6))
    val = collect(*loaded, load_split("validation", 3))
    loop = LoopConfig(rounds=2, max_rollouts=4, seed=1)
    run = lambda ckpt=None, log=print: run_rounds(  # noqa: E731
        train, val, loaded, TINY_FIT, loop, TINY_ROLLOUT, ckpt_dir=ckpt, log=log
    )
    a, b = run(), run(tmp_path)
    assert 2 <= len(a) <= 3 and len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert torch.equal(ra.labels, rb.labels)
        assert all(
            torch.equal(x, y)
            for x, y in zip(
                ra.model.state_dict().values(), rb.model.state_dict().values(), strict=True
            )
        )
    assert int((a[1].labels != ROLLOUT).sum()) < len(train)  # unsampled rollout rows are left out
    assert "flip_frac_rollout" in a[1].log and a[1].log["rollouts"] == 4
    lines: list[str] = []
    c = run(tmp_path, lines.append)
    assert sum("resumed" in s for s in lines) == len(c)
    assert torch.equal(c[-1].labels, b[-1].labels)


def test_train_router_writes_a_calibrated_card(trained: Path, pair) -> None:
    router = load_card(
        trained / "card",
        hidden_size=16,
        tokenizer_hash=tokenizer_hash(pair[0]),
        available_features=("hidden:final", "logprobs:top8"),
    )
    assert router.features == ("hidden:final", "logprobs:top8")  # the pipeline's default inputs
    cal = router.card.calibration
    assert len(cal) > 5 and cal[-1].llm_share == 0.0
    assert all(a.llm_share >= b.llm_share for a, b in zip(cal, cal[1:], strict=False))
    assert router.card.training["cost_lambda"] == 0.2
    # the default threshold is the calibrated one for the stated default share
    assert router.card.training["default_share"] == 0.2
    at = {c.threshold: c.llm_share for c in cal}
    assert router.default_threshold in at and at[router.default_threshold] <= 0.2 + 0.1
    report = json.loads((trained / "work" / "train_report.json").read_text())
    assert [r["round"] for r in report["rounds"]][:2] == [0, 1]
    assert {"flips", "val", "val_auc_slm_error"} <= set(report["rounds"][1])
    assert set(report["timing"]) >= {"collect_s", "llm_check_s", "rounds_s", "total_s"}
    labels = report["labels"]  # rule 2 only on items the LLM alone answers right
    assert 0 <= labels["llm_solves_items"] <= 12 and labels["rule2_demoted"] >= 0
    answers = json.loads(next((trained / "work" / "collect").glob("llm-answers-*")).read_text())
    solves = verdicts(load_split("train", 12), answers)  # the LLM's own answers, cached
    assert len(solves) == 12 and sum(solves) == labels["llm_solves_items"]
    for name in ("citer_s", "citer_round1", "query"):
        assert (trained / "work" / "cards" / name / "router.json").is_file()


def test_calibrate_rescales_a_card_on_the_slms_own_decodes(trained: Path, pair, tmp_path) -> None:
    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.registry import make_router
    from router_models.share import threshold_for_share

    data = tmp_path / "items.jsonl"
    write_jsonl(load_split("train", 4), data)
    out = tmp_path / "calibrated"
    args = ["calibrate", "--slm", str(pair[0]), "--llm", str(pair[1]), "--card",
            str(trained / "card"), "--data", str(data), "--items", "4", "--max-tokens", "8",
            "--default-share", "0.3", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    old, new = trained / "card", out
    assert (new / "router.safetensors").read_bytes() == (old / "router.safetensors").read_bytes()
    card = load_card(new, hidden_size=16, tokenizer_hash=tokenizer_hash(pair[0]),
                     available_features=("hidden:final", "logprobs:top8")).card  # fmt: skip
    shares = [c.llm_share for c in card.calibration]
    assert shares == sorted(shares, reverse=True) and shares[0] == 1.0 and shares[-1] == 0.0
    assert card.default_threshold == threshold_for_share(card, 0.3)
    note = card.training["calibrations"][-1]
    assert (note["data"], note["items"], note["default_share"]) == ("items.jsonl", 4, 0.3)
    # every position of the SLM's own greedy decodes was scored once
    p = build_pair(PairConfig(str(pair[0]), str(pair[1])))
    slm_only = ScheduledDecoder(p, *make_router(p, "slm"), 1, 16, 8)
    slm_only(load_split("train", 4))
    assert note["positions"] == sum(len(o.token_ids) for o in slm_only.outputs)
    assert card.training["cost_lambda"] == 0.2  # the rest of the card is kept


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--default-share", "1.5"], "--default-share 1.5: must lie in [0, 1]"),
     (["--items", "0"], "--items must be >= 1, got 0"),
     (["--out", "{card}"], "is --card: write the calibrated card elsewhere")],
)  # fmt: skip
def test_calibrate_bad_input(extra: list[str], needle: str, trained: Path, capsys) -> None:
    card = str(trained / "card")
    args = ["calibrate", "--slm", "nope", "--llm", "nope", "--card", card, "--data", "x.jsonl",
            "--out", "elsewhere", *[a.format(card=card) for a in extra]]  # fmt: skip
    assert main(args) == 2
    assert needle in capsys.readouterr().err


def test_sweep_report_has_every_policy(trained: Path, pair, tmp_path: Path) -> None:
    from citer.sweep_cmd import ALL

    data = tmp_path / "two.jsonl"
    write_jsonl(load_split("test", 2), data)
    rc = main(
        [
            "eval",
            "--sweep",
            "--slm",
            str(pair[0]),
            "--llm",
            str(pair[1]),
            "--router-card",
            str(trained / "card"),
            "--baselines",
            str(trained / "work" / "cards"),
            "--data",
            str(data),
            "--sweep-shares",
            "0.3",
            "--calib-items",
            "6",
            "--sweep-out",
            str(tmp_path / "sweep"),
        ]
    )
    assert rc == 0
    rep = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert set(rep["summary"]) == set(ALL) == set(rep["points"])
    for pts in rep["points"].values():
        assert all(0.0 <= p["llm_share"] <= 1.0 and 0.0 <= p["accuracy"] <= 1.0 for p in pts)
    assert rep["points"]["slm"][0]["llm_share"] == 0.0
    assert rep["points"]["llm"][0]["llm_share"] == 1.0
    assert (tmp_path / "sweep" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def _bad_item() -> Item:
    return Item([{"role": "user", "content": "2+1?"}], "It is 3.", "3", "arith", "bad-1")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cost-lambda", "-0.1"], "cost lambda=-0.1: must be >= 0"),
        (["--cost-lambda", "1.5"], "must be < 1"),
        (["--data", "{bad}", "--val-data", "{good}"], "has no verifier for its answer"),
        (["--data", "{good}", "--val-items", "3"], "none are left for training"),
        (["--data", "{empty}"], "empty.jsonl: no items"),
        (["--data", "{good}", "--val-data", "{good}"], "shares items with the train data"),
        (["--default-share", "1.5"], "default_share=1.5: must lie in [0, 1]"),
        (["--train-items", "0"], "--train-items must be >= 1"),
        (["--width", "0"], "router width=0: must be >= 1"),
        (["--rounds", "-1"], "rounds=-1: must be >= 0 (0 trains CITER-S only)"),
    ],
)
def test_train_router_bad_input(args: list[str], needle: str, tmp_path: Path, capsys) -> None:
    bad, empty, good = tmp_path / "bad.jsonl", tmp_path / "empty.jsonl", tmp_path / "good.jsonl"
    write_jsonl([_bad_item()], bad)
    write_jsonl(load_split("train", 3), good)
    empty.write_text("")
    args = [a.format(bad=bad, empty=empty, good=good) for a in args]
    assert main(["train-router", "--slm", "nope", "--llm", "nope", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_rounds_0_trains_citer_s_without_rollouts(pair, tmp_path: Path) -> None:
    """--rounds 0: the shortcut round alone (CITER-S), no rollouts, a calibrated card."""
    args = ["train-router", "--slm", str(pair[0]), "--llm", str(pair[1]), "--out",
            str(tmp_path / "card"), "--work-dir", str(tmp_path / "work"), "--train-items", "8",
            "--val-items", "4", "--val-decode-items", "0", "--rounds", "0", "--epochs", "2",
            "--no-baselines", "--features", "logprobs:top8"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((tmp_path / "work" / "train_report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0]
    assert "rollouts" not in report["rounds"][0]
    router = load_card(tmp_path / "card", hidden_size=16, tokenizer_hash=tokenizer_hash(pair[0]),
                       available_features=("logprobs:top8",))  # fmt: skip
    assert router.card.training["rounds"] == 0 and len(router.card.calibration) > 5


def test_train_data_holds_its_last_items_out_for_calibration(tmp_path: Path) -> None:
    import argparse

    from citer.train_cmd import add_train_router, load_items

    data = tmp_path / "data.jsonl"
    write_jsonl(load_split("train", 10), data)
    ap = argparse.ArgumentParser()
    add_train_router(ap.add_subparsers())
    args = ap.parse_args(["train-router", "--data", str(data), "--val-items", "4",
                          "--train-items", "5"])  # fmt: skip
    train, val = load_items(args)
    assert [it.id for it in train] == [it.id for it in load_split("train", 5)]
    assert [it.id for it in val] == [it.id for it in load_split("train", 10)[-4:]]


def test_sweep_refuses_a_card_for_another_pair(pair, card_dir: Path, capsys) -> None:
    # card_dir (router conftest) was trained for an SLM of hidden size 8; this SLM has 16.
    rc = main(
        [
            "eval",
            "--sweep",
            "--slm",
            str(pair[0]),
            "--llm",
            str(pair[1]),
            "--router-card",
            str(card_dir),
            "--sweep-policies",
            "slm,llm,citer",
            "--limit",
            "1",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "expects hidden_size 8 but the SLM has 16" in err
