"""Task generators, splits, verifiers and the JSONL format."""

from __future__ import annotations

import json
import random

import pytest

from tasks.families import FAMILIES
from tasks.splits import EVAL_SIZE, load_split, train_stream
from tasks.types import Item, TaskDataError, read_jsonl, write_jsonl
from tasks.verify import extract_answer, is_correct, normalize


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generator_is_deterministic_and_self_consistent(family: str) -> None:
    a = [FAMILIES[family](random.Random(7)) for _ in range(1)]
    rng1, rng2 = random.Random(11), random.Random(11)
    xs = [FAMILIES[family](rng1) for _ in range(300)]
    ys = [FAMILIES[family](rng2) for _ in range(300)]
    assert xs == ys
    assert a[0] == FAMILIES[family](random.Random(7))
    for _prompt, ref, ans in xs:
        assert ref.endswith(f"The answer is {ans}.")
        assert is_correct(ref, ans)
    assert len({p for p, _, _ in xs}) > 250  # varied, not a handful of templates


def test_arithmetic_answers_are_right() -> None:
    rng = random.Random(3)
    for _ in range(500):
        prompt, _, ans = FAMILIES["arith"](rng)
        expr = prompt.removeprefix("What is ").removesuffix("?")
        assert eval(expr) == int(ans)  # noqa: S307 - generated digits and one operator


def test_compare_options_are_lettered_by_initial_and_the_answer_is_right() -> None:
    rng = random.Random(5)
    for _ in range(300):
        prompt, ref, ans = FAMILIES["compare"](rng)
        facts, _, rest = prompt.partition("\nWho is the ")
        opts = [ln for ln in rest.splitlines() if ") " in ln]
        assert [o[0] for o in opts] == list("ABCDE"[: len(opts)])
        assert all(o[3] == o[0] for o in opts)  # "C) Cleo"
        # the answer is the one name never on the losing side of the question's order
        sup = rest.split("?")[0]
        beats = [f.split(" is ")[0] for f in facts.split(". ")]
        loses = [f.split(" than ")[1].rstrip(".") for f in facts.split(". ")]
        names = [o[3:] for o in opts]
        top = sup in {"tallest", "oldest", "fastest", "heaviest"}
        winner = [n for n in names if n not in (loses if top else beats)]
        assert winner == [f"{ans}{winner[0][1:]}"] and ref.endswith(
            f"is {winner[0]}.\nThe answer is {ans}."
        )


def test_sort_takes_distinct_one_digit_numbers() -> None:
    rng, seen = random.Random(6), 0
    for _ in range(400):
        prompt, _, ans = FAMILIES["list"](rng)
        if prompt.startswith("Sort the list "):
            xs = [int(x) for x in prompt[len("Sort the list ") :].split(" from")[0].split(", ")]
            assert len(set(xs)) == len(xs) and all(1 <= x <= 9 for x in xs)
            assert ans == ", ".join(map(str, sorted(xs)))
            seen += 1
    assert seen > 50


def test_splits_are_fixed_balanced_and_disjoint() -> None:
    test = load_split("test")
    assert len(test) == EVAL_SIZE
    assert [it.id for it in test[:3]] == ["test-0", "test-1", "test-2"]
    assert load_split("test", 5) == test[:5]
    fams = {f: sum(it.family == f for it in test) for f in FAMILIES}
    assert set(fams.values()) == {EVAL_SIZE // 4}
    held = {it.prompt_text for it in test} | {it.prompt_text for it in load_split("validation")}
    stream = train_stream()
    assert all(next(stream).prompt_text not in held for _ in range(3000))
    assert load_split("validation", 3) != test[:3]


def test_family_filter_and_errors() -> None:
    only = load_split("test", 10, families=["compare"])
    assert len(only) == 10 and {it.family for it in only} == {"compare"}
    with pytest.raises(ValueError, match="unknown task family 'poetry'"):
        load_split("test", 10, families=["poetry"])
    with pytest.raises(ValueError, match="unknown split"):
        load_split("dev")
    with pytest.raises(ValueError, match="pass a limit"):
        load_split("train")


@pytest.mark.parametrize(
    ("text", "answer", "ok"),
    [
        ("2 + 2 = 4.\nThe answer is 4.", "4", True),
        ("The answer is 4", "4", True),
        ("The answer is 3.\nThe answer is 4.", "4", True),  # the last answer line counts
        ("The answer is 5.", "4", False),
        ("The answer is 44.", "4", False),
        ("the result is 4.", "4", False),  # malformed: no answer line
        ("", "4", False),
        ("The answer is 3,  7 ,9.", "3, 7, 9", True),
        ("The answer is b.", "B", True),
    ],
)
def test_verifier(text: str, answer: str, ok: bool) -> None:
    assert is_correct(text, answer) is ok


def test_extract_and_normalize() -> None:
    assert extract_answer("x\nThe answer is 12, 3.") == "12, 3"
    assert extract_answer("no answer here") is None
    assert normalize(" 1 ,2 , 3. ") == "1, 2, 3"


def test_jsonl_round_trip(tmp_path) -> None:
    items = load_split("validation", 12)
    p = tmp_path / "v.jsonl"
    assert write_jsonl(items, p) == 12
    assert read_jsonl(p) == items
    row = json.loads(p.read_text().splitlines()[0])
    assert set(row) == {"messages", "reference", "answer", "family", "id"}


def test_jsonl_user_data_without_ids(tmp_path) -> None:
    p = tmp_path / "gsm.jsonl"
    row = {"messages": [{"role": "user", "content": "1+1?"}], "reference": "The answer is 2.",
           "answer": "2", "family": "gsm8k"}  # fmt: skip
    p.write_text(json.dumps(row) + "\n\n" + json.dumps(row) + "\n")
    got = read_jsonl(p)
    assert [it.id for it in got] == ["gsm-1", "gsm-3"]
    assert got[0] == Item(row["messages"], "The answer is 2.", "2", "gsm8k", "gsm-1")


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"messages": [], "reference": "", "answer": "", "family": "x"}', "non-empty list"),
        (
            '{"messages": [{"role": "bot", "content": "hi"}], "reference": "r", "answer": "a", '
            '"family": "x"}',
            "role in",
        ),  # fmt: skip
        (
            '{"messages": [{"role": "user", "content": "hi"}], "answer": "a", "family": "x"}',
            "missing field 'reference'",
        ),  # fmt: skip
    ],
)
def test_jsonl_malformed_line_names_file_and_line(tmp_path, line: str, needle: str) -> None:
    good = '{"messages": [{"role": "user", "content": "q"}], "reference": "r", "answer": "a", '
    good += '"family": "f"}'
    p = tmp_path / "bad.jsonl"
    p.write_text(good + "\n" + line + "\n")
    with pytest.raises(TaskDataError, match=rf"bad\.jsonl:2: .*{needle}"):
        read_jsonl(p)


def test_jsonl_missing_file(tmp_path) -> None:
    with pytest.raises(TaskDataError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl")
