"""Rounds of the serving benchmark: pairing within a round, the medians, the bound."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest

from benchmarks.serving_report import Point
from benchmarks.serving_rounds import bound, median_points, order, paired, rounds_table
from benchmarks.serving_section import section
from tests.benchmarks.test_serving_bench import PAIR, _result


def _point(target: str, conc: int, rnd: int, tok_s: float, share: float | None) -> Point:
    return Point("gateway", target, conc, 16, 1000, 1000 / tok_s, tok_s, 1.0, 2.0, 0.1, 0.2,
                 share, None, None, None, None, 100.0, 90.0, round=rnd)  # fmt: skip


# Three rounds at c=16 in which the machine slows down 2x from round to round:
# citer:0.2 is 1.25x LLM-only within each round, while the medians of the two
# columns taken alone (400 / 500) would say 0.8x.
DRIFT = [
    (0, 1600.0, 1280.0, 3200.0),
    (1, 800.0, 640.0, 1600.0),
    (2, 400.0, 320.0, 800.0),
]
POINTS = [
    p
    for rnd, citer, llm, slm in DRIFT
    for p in (
        _point("citer:0.2", 16, rnd, citer, 0.2),
        _point("llm", 16, rnd, llm, 1.0),
        _point("slm", 16, rnd, slm, 0.0),
    )  # fmt: skip
]


def test_odd_rounds_reverse_the_order() -> None:
    assert order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert order(["a", "b", "c"], 1) == ["c", "b", "a"]
    assert order(["a", "b", "c"], 2) == ["a", "b", "c"]


def test_ratios_pair_each_round_with_its_own_llm_point() -> None:
    (pr,) = paired(POINTS)
    assert (pr.target, pr.concurrency) == ("citer:0.2", 16)
    assert pr.ratios == pytest.approx([1.25, 1.25, 1.25])
    assert pr.median == pytest.approx(1.25)
    # the SLM at 2.5x the LLM's tok/s, 20% LLM share: bound 1 / (0.2 + 0.8 / 2.5) = 1.923
    assert bound(0.2, 3200.0, 1280.0) == pytest.approx(1 / 0.52)
    assert pr.of_bound_median == pytest.approx(1.25 * 0.52)


def test_a_round_without_its_llm_point_is_left_out() -> None:
    pts = [p for p in POINTS if not (p.target == "llm" and p.round == 2)]
    (pr,) = paired(pts)
    assert len(pr.ratios) == 2


def test_median_points_take_the_median_round() -> None:
    med = median_points(POINTS)
    assert [(p.target, p.round) for p in med] == [("citer:0.2", 1), ("llm", 1), ("slm", 1)]
    two = median_points([p for p in POINTS if p.round < 2])  # even count: the lower middle
    assert [p.tokens_per_s for p in two] == [800.0, 640.0, 1600.0]


def test_rounds_table_and_section() -> None:
    table = rounds_table(POINTS)
    row = table.splitlines()[2].split(" | ")
    assert row[0] == "| citer:0.2" and row[2] == "3"
    assert row[3] == "1600, 800, 400" and row[5] == "1.25, 1.25, 1.25"
    assert row[6] == "**1.25x** (1.25-1.25)" and row[7] == "65% |"
    result = _result()
    result["config"]["rounds"] = 2
    again = [replace(Point(**p), round=1, tokens_per_s=2 * p["tokens_per_s"])
             for p in result["points"]]  # fmt: skip
    result["points"] += [asdict(p) for p in again]
    text = section(result, [PAIR])
    assert "### Rounds" in text and "2 rounds per concurrency" in text
    summary = [ln for ln in text.splitlines() if ln.startswith("| citer gateway (HF) | citer")]
    assert len(summary) == 3  # still one summary row and a latency row per concurrency
    # a single-round run has no rounds table
    assert "### Rounds" not in section(_result(), [PAIR])


def test_rounds_plot_draws_each_run(tmp_path) -> None:
    import json

    from benchmarks.rounds_plot import main

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"points": [asdict(p) for p in POINTS]}))
    out = tmp_path / "rounds.png"
    assert main([f"a={path}", f"b={path}", "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    with pytest.raises(SystemExit):
        main([str(path), "--out", str(out)])  # no label
