"""Sweep metrics on hand-made curves: APGR, call-performance thresholds, query composition."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_models.train.plot import plot_sweep
from router_models.train.sweep import (
    Point,
    apgr,
    cpt,
    format_table,
    interp,
    query_curve,
    summarize,
)

SLM_ACC, LLM_ACC = 0.4, 0.8


def pt(policy: str, share: float, acc: float, **kw) -> Point:
    return Point(policy, 0.5, None, share, acc, 1.0, 100.0, 4, **kw)


def curves() -> dict[str, list[Point]]:
    return {
        "slm": [pt("slm", 0.0, SLM_ACC)],
        "llm": [pt("llm", 1.0, LLM_ACC)],
        "linear": [pt("linear", 0.5, 0.6)],  # on the straight line: APGR 0.5
        "good": [pt("good", 0.1, 0.7), pt("good", 0.2, 0.8), pt("good", 0.4, 0.8)],
    }


def test_apgr_of_the_single_models_and_a_straight_line() -> None:
    c = curves()
    assert apgr(c["llm"], SLM_ACC, LLM_ACC) == pytest.approx(1.0)
    assert apgr(c["slm"], SLM_ACC, LLM_ACC) == pytest.approx(0.0)
    assert apgr(c["linear"], SLM_ACC, LLM_ACC) == pytest.approx(0.5)
    # good: 0.1*(0.4+0.7)/2 + 0.1*(0.7+0.8)/2 + 0.2*0.8 + 0.6*0.8 = 0.77 -> (0.77-0.4)/0.4
    assert apgr(c["good"], SLM_ACC, LLM_ACC) == pytest.approx((0.77 - 0.4) / 0.4)
    assert apgr(c["good"], 0.8, 0.8) is None  # no gap to recover


def test_call_performance_thresholds() -> None:
    c = curves()
    assert cpt(c["linear"], SLM_ACC, LLM_ACC, 0.5) == pytest.approx(0.5)
    assert cpt(c["good"], SLM_ACC, LLM_ACC, 0.5) == pytest.approx(0.1 * 0.2 / 0.3)
    assert cpt(c["good"], SLM_ACC, LLM_ACC, 0.95) == pytest.approx(0.1 + 0.1 * 0.08 / 0.1)
    assert cpt(c["llm"], SLM_ACC, LLM_ACC, 0.95) == 0.0
    # below the SLM first: the goal 0.78 is reached on the last segment (0.5, 0.3)-(1, 0.8)
    assert cpt([pt("bad", 0.5, 0.3)], SLM_ACC, LLM_ACC, 0.95) == pytest.approx(0.98)
    assert interp([(0.0, 0.0), (1.0, 1.0)], 0.25) == 0.25


def test_summary_has_every_policy_and_sane_bounds() -> None:
    rows = summarize(curves())
    assert set(rows) == {"slm", "llm", "linear", "good"}
    assert rows["llm"]["apgr"] == 1.0 and rows["slm"]["apgr"] == 0.0
    assert rows["good"]["accuracy_at"] == {"0.10": 0.7, "0.20": 0.8, "0.30": 0.8}
    for r in rows.values():
        assert all(0.0 <= a <= 1.0 for a in r["accuracy_at"].values())
        assert all(v is None or 0.0 <= v <= 1.0 for v in r["cpt"].values())
    table = format_table(rows)
    assert table.count("\n") == 1 + len(rows) and "| good | 0.925 | 6.7% | 12.0% | 18.0% |" in table


def test_query_curve_is_composed_from_single_model_runs() -> None:
    kw = {"tokens": [10, 10, 20, 20], "item_flops": [1.0, 1.0, 2.0, 2.0]}
    slm = pt("slm", 0.0, 0.5, correct=[True, False, True, False], **kw)
    llm = pt("llm", 1.0, 0.75, correct=[True, True, True, False], **kw)
    pts = query_curve([0.9, 0.8, 0.1, 0.2], slm, llm)
    by_share = {round(p.llm_share, 4): p.accuracy for p in pts}
    assert by_share[0.0] == 0.5 and by_share[1.0] == 0.75
    assert by_share[round(10 / 60, 4)] == 0.5  # item 0 to the LLM: right either way
    assert by_share[round(20 / 60, 4)] == 0.75  # items 0 and 1: item 1 now right
    with pytest.raises(ValueError, match="per-item results"):
        query_curve([0.1], slm, llm)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = plot_sweep(curves(), tmp_path / "p" / "sweep.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
