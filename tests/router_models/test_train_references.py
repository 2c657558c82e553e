"""Train references: the data's worked solutions vs the LLM's own greedy answers (R2R)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citer.cli import main
from router_models.train.references import llm_references, verdicts
from tasks.splits import load_split

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"


def test_llm_references_keep_the_solved_items_with_the_llms_answer() -> None:
    items = load_split("train", 3)
    texts = [f"So {it.answer}. The answer is {it.answer}." for it in items]
    texts[1] = "The answer is -12345."  # the LLM got this one wrong
    assert verdicts(items, texts) == [True, False, True]
    kept = llm_references(items, texts)
    assert [it.id for it in kept] == [items[0].id, items[2].id]
    assert [it.reference for it in kept] == [texts[0], texts[2]]
    assert kept[0].messages == items[0].messages and kept[0].answer == items[0].answer
    with pytest.raises(ValueError, match="answers none of the 3 train items correctly"):
        llm_references(items, ["no answer"] * 3)


def _train(tmp_path: Path, refs: str) -> dict:
    work = tmp_path / refs
    args = ["train-router", "--slm", str(DEMO / "slm"), "--llm", str(DEMO / "llm"),
            "--out", str(work / "card"), "--work-dir", str(work), "--train-items", "24",
            "--val-items", "8", "--val-decode-items", "0", "--rounds", "0", "--epochs", "1",
            "--query-items", "0", "--no-baselines", "--no-ablation", "--references", refs,
            "--features", "logprobs:top8"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((work / "train_report.json").read_text())
    assert json.loads((work / "card" / "router.json").read_text())["training"]["references"] == refs
    return report


def test_llm_references_label_where_the_slm_leaves_the_llms_path(tmp_path: Path) -> None:
    """Along the LLM's own answers the LLM's argmax is the reference at every position,
    so no row is left for rollouts: a row is SLM (it agrees) or LLM. Along the data's
    worked solutions both models sometimes miss the reference token (the demo pair was
    trained on those solutions: rarely; a real pair: often)."""
    data, llm = _train(tmp_path, "data"), _train(tmp_path, "llm")
    assert data["labels"]["rollout"] > 0
    assert llm["labels"]["rollout"] < data["labels"]["rollout"]
    assert llm["labels"]["rollout"] <= 0.01 * llm["labels"]["rows"]
    assert llm["labels"]["llm"] > 0 and llm["labels"]["slm"] > 0
    assert llm["config"]["references"] == "llm"
    # one LLM-only decode of the train items serves both the check and the references
    assert len(list((tmp_path / "llm" / "collect").glob("llm-answers-*.json"))) == 1
