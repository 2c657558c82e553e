"""Public benchmarks as task items: GSM8K and CommonsenseQA lines read as given, exact
verifiers per item, and every worked reference in the shared data verifying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.public import read_items
from tasks.types import TaskDataError, read_jsonl, write_jsonl
from tasks.verify import is_correct

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
GSM = {"id": "g1", "question": "Ann has 3 bags of 12,000 beads. How many beads?",
       "solution": "3 * 12000 = <<3*12000=36000>>36000 beads.\nThe answer is \\boxed{36000}.",
       "answer": "36000"}  # fmt: skip
CSQA = {"id": "c1", "question": "Silk is used to make high quality what?",
        "choices": [{"label": L, "text": t} for L, t in zip("ABCDE", ["nightgown", "tree",
                    "garments", "chinatown", "bushes"], strict=True)],
        "answer": "C",
        "rationale": "Silk makes garments. Therefore, the answer is garments (c)."}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "answer", "verifier", "ok"),
    [
        ("9 * 2 = 18.\nThe answer is 18.", "18", "number", True),
        ("The answer is $1,800.", "1800", "number", True),
        ("so x = \\boxed{18}", "18", "number", True),
        ("It is 18.0", "18", "number", True),
        ("The answer is 17, not 18 as I said", "18", "number", False),
        ("no number at all", "18", "number", False),
        ("Therefore, the answer is garments (c).", "C", "choice", True),
        ("The answer is (E).", "E", "choice", True),
        ("B", "B", "choice", True),
        ("the answer is a bank", "A", "choice", False),  # the article, not a letter
        ("The answer is 42.", "42", "answer-line", True),
    ],
)
def test_verifiers(text: str, answer: str, verifier: str, ok: bool) -> None:
    assert is_correct(text, answer, verifier) is ok


def test_public_lines_become_items_with_prompts_references_and_verifiers(tmp_path) -> None:
    gsm, csqa = tmp_path / "gsm.jsonl", tmp_path / "csqa.jsonl"
    gsm.write_text(json.dumps(GSM) + "\n")
    csqa.write_text(json.dumps(CSQA) + "\n" + json.dumps({**CSQA, "rationale": None}) + "\n")
    (g,) = read_items(gsm)
    assert g.verifier == "number" and g.family == "gsm8k" and g.id == "g1"
    assert "step by step" in g.messages[0]["content"] and "<<" not in g.reference
    assert g.reference.endswith("The answer is 36000.") and is_correct(g.reference, "36000")
    c, bare = read_items(csqa)
    assert c.verifier == "choice" and "C) garments" in c.messages[0]["content"]
    assert c.reference == "Silk makes garments.\nThe answer is C." and bare.reference == ""
    out = tmp_path / "items.jsonl"  # our own schema keeps the verifier
    write_jsonl([g, c], out)
    assert [it.verifier for it in read_jsonl(out)] == ["number", "choice"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**CSQA, "choices": "ABCDE"}) + "\n")
    with pytest.raises(TaskDataError, match="bad.jsonl:1"):
        read_items(bad)
    row = {**g.to_json(), "verifier": "vibes"}
    (tmp_path / "v.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(TaskDataError, match="'verifier' must be one of"):
        read_items(tmp_path / "v.jsonl")


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data in this checkout")
@pytest.mark.parametrize("name", ["gsm8k/train", "gsm8k/test", "commonsenseqa/train"])
def test_every_shared_reference_verifies(name: str) -> None:
    items = read_items(SHARED / f"{name}.jsonl")
    assert len(items) >= 1000 and all(it.reference for it in items)
    assert all(is_correct(it.reference, it.answer, it.verifier) for it in items)
    assert all(is_correct(it.reference, it.answer) for it in items)  # the answer line too
