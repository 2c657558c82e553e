"""The serving benchmark's pure parts: the GPU cost model, a point's statistics, the
tables and the BENCHMARKS.md section. No server runs here (make bench does that)."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest

from benchmarks.gpu_projection import PAIRS, PublishedPair, Trace, model_ms, project, share_bound
from benchmarks.serving_client import Sample
from benchmarks.serving_report import (
    BEGIN,
    END,
    Accuracy,
    pct,
    replace_section,
    summarize,
    summary_table,
    trace,
)
from benchmarks.serving_section import TITLE, section

PAIR = PublishedPair("S / L", "GPU", "stack", 400.0, 100.0, "src")  # 2.5 / 10 ms per token


def test_cost_model_charges_every_slm_forward_and_llm_call() -> None:
    routed = Trace("citer:0.2", 0.2, 0.2, 1.3, host_ms_per_token=0.5)
    assert model_ms(routed, PAIR) == pytest.approx(1.3 * 2.5 + 0.2 * 10.0)  # 5.25 ms
    # The single models cost one forward of their own per token, whatever their counters.
    assert model_ms(Trace("llm", 1.0, 0.25, 0.0), PAIR) == pytest.approx(10.0)
    assert model_ms(Trace("slm", 0.0, 0.0, 1.0), PAIR) == pytest.approx(2.5)
    base = Trace("llm", 1.0, 0.25, 0.0, host_ms_per_token=0.3)
    p = {x.target: x for x in project([routed, base], PAIR)}
    assert p["citer:0.2"].speedup == pytest.approx(10.0 / 5.25, abs=1e-3)
    assert p["llm"].speedup == 1.0
    # Host time is paid on both sides, so it shrinks the speed-up.
    assert p["citer:0.2"].ms_per_token_host == pytest.approx(5.75)
    assert p["citer:0.2"].speedup_host == pytest.approx(10.3 / 5.75, abs=1e-3)
    assert p["citer:0.2"].speedup_host < p["citer:0.2"].speedup


def test_projection_needs_an_llm_baseline_and_bound_matches_the_formula() -> None:
    with pytest.raises(ValueError, match="baseline"):
        project([Trace("citer:0.2", 0.2, 0.2, 1.0)], PAIR)
    assert share_bound(0.2, PAIR) == pytest.approx(1 / (0.2 + 0.8 * 0.25))
    assert share_bound(1.0, PAIR) == pytest.approx(1.0)
    for pair in PAIRS:  # the published figures: the small model is the faster one
        assert pair.t_slm_ms < pair.t_llm_ms and pair.source


def test_pct_interpolates_and_ignores_nan() -> None:
    assert pct([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    assert pct([1.0, 2.0], 0.9) == pytest.approx(1.9)
    assert pct([float("nan"), 7.0], 0.5) == 7.0
    assert math.isnan(pct([], 0.5))


def _sample(ttft: float, e2e: float, tokens: int, llm: int | None, over: float | None) -> Sample:
    return Sample(ttft, e2e, tokens, "The answer is 1.", llm, over)


def test_summarize_point_statistics() -> None:
    samples = [_sample(0.01, 0.11, 11, 2, 0.011), _sample(0.03, 0.23, 21, 4, 0.021)]
    d = {"slm_s": 0.1, "router_s": 0.02, "llm_s": 0.06, "scheduler_s": 0.02}
    p = summarize("gateway", "citer:0.2", 1, samples, 0.4, d, (400.0, 380.0))
    assert (p.tokens, p.tokens_per_s) == (32, 80.0)
    assert (p.ttft_ms_p50, p.itl_ms_p50) == (20.0, 10.0)  # ITL: (e2e - ttft) / (n - 1)
    assert p.llm_share == pytest.approx(6 / 32, abs=1e-4)
    assert p.router_pct == pytest.approx(10.0)  # 0.02 of 0.2 s of steps
    assert p.step_busy_pct == pytest.approx(50.0)  # 0.2 s of steps in 0.4 s
    assert p.overhead_ms_per_token == pytest.approx(1.0)  # 11 us/token and 1 ms/token
    assert p.host_ms_per_token == pytest.approx(1.0 + 1e3 * 0.04 / 32, abs=1e-3)
    assert p.llm_calls_per_token is p.slm_forwards_per_token is None  # no counters in d
    # A server without scheduler counters or per-source usage (vLLM): those stay empty.
    v = summarize("vllm", "llm", 4, [_sample(0.01, 0.11, 11, None, None)], 0.2, {}, (1.0, 1.0))
    assert v.llm_share is v.router_pct is v.overhead_ms_per_token is v.host_ms_per_token is None


def test_projection_trace_is_the_batch_1_points() -> None:
    """The projection is for batch 1: the c=1 point's counters win over the c=16
    accuracy pass's (the scheduler drafts differently while one sequence decodes)."""
    d = {"slm_s": 0.1, "router_s": 0.02, "llm_s": 0.06, "scheduler_s": 0.02,
         "llm_calls": 6.0, "drafts": 38.4}  # fmt: skip
    samples = [_sample(0.01, 0.11, 11, 2, 0.011), _sample(0.03, 0.23, 21, 4, 0.021)]
    c1 = summarize("gateway", "citer:0.2", 1, samples, 0.4, d, (400.0, 380.0))
    assert (c1.llm_calls_per_token, c1.slm_forwards_per_token) == (0.1875, 1.2)
    acc = Accuracy("gateway", "citer:0.2", 10, 7, 320, 1.0, 0.2, 0.21, 1.37)
    t = trace(acc, c1)
    assert (t.llm_share, t.llm_calls_per_token, t.slm_forwards_per_token) == (0.1875, 0.1875, 1.2)
    assert t.host_ms_per_token == c1.host_ms_per_token
    t16 = trace(acc, None)  # no c=1 point: the accuracy pass's trace
    assert (t16.llm_calls_per_token, t16.slm_forwards_per_token) == (0.21, 1.37)


def test_replace_section_keeps_the_rest_of_the_document() -> None:
    doc = "# Benchmarks\n\n## Core\n\ntext\n"
    once = replace_section(doc, "## Serving\n\nv1")
    assert once.startswith(doc.rstrip("\n")) and once.count(BEGIN) == 1
    doc2 = once + "\n## Later section\n\nkept\n"
    twice = replace_section(doc2, "## Serving\n\nv2")
    assert "v1" not in twice and "v2" in twice and twice.endswith("## Later section\n\nkept\n")
    assert twice.count(BEGIN) == twice.count(END) == 1


def _result() -> dict:
    samples = [_sample(0.01, 0.11, 11, 2, 0.011)]
    d = {"slm_s": 0.1, "router_s": 0.02, "llm_s": 0.06, "scheduler_s": 0.02}
    pts = [summarize("gateway", t, c, samples, 0.2, d, (400.0, 390.0))
           for t in ("citer:0.2", "llm") for c in (1, 16)]  # fmt: skip
    pts.append(summarize("vllm", "llm", 1, [_sample(0.01, 0.11, 11, None, None)], 0.2, {},
                         (900.0, 700.0)))  # fmt: skip
    accs = [Accuracy("gateway", "citer:0.2", 10, 7, 500, 1.0, 0.2, 0.2, 1.3),
            Accuracy("gateway", "llm", 10, 8, 500, 1.0, 1.0, 0.25, 0.0),
            Accuracy("vllm", "llm", 10, 8, 500, 1.0, None, None, None)]  # fmt: skip
    return {
        "config": {
            "out_dir": "benchmarks/serving",
            "min_requests": 16,
            "max_tokens": 128,
            "accuracy_items": 10,
            "accuracy_concurrency": 16,
            "accuracy_max_tokens": 320,
        },  # fmt: skip
        "machine": {"cpus": 2, "cpu": "x86", "note": "idle"},
        "models": {"slm": "abc", "llm": "def"},
        "peak_rss_mb": {"gateway": 410.0, "vllm": None},
        "wall_s": 600.0,
        "points": [asdict(p) for p in pts],
        "accuracy": [asdict(a) | {"accuracy": a.accuracy} for a in accs],
    }


def test_section_tables_and_projection_label() -> None:
    result = _result()
    text = section(result, [PAIR])
    assert text.startswith(TITLE)
    assert "NOT a measurement" in text and "src" in text  # labelled, with its source
    rows = [ln for ln in text.splitlines() if ln.startswith("| citer gateway (HF) | citer:0.2")]
    assert len(rows) == 3  # summary + two latency rows
    assert "0.700 (7/10)" in rows[0]  # accuracy beside the throughput
    proj = [ln for ln in text.splitlines() if ln.startswith("| S / L (GPU) | citer:0.2")]
    assert len(proj) == 1 and "| 5.25 | 1.9" in proj[0]  # 1.3 * 2.5 + 0.2 * 10 ms; 10 / 5.25
    assert "vLLM (API server, engine core, worker: three processes) at not run" in text
    points = [summarize("gateway", "slm", 4, [_sample(0.01, 0.11, 11, 0, None)], 0.2, {},
                        (1.0, 1.0))]  # fmt: skip
    table = summary_table(points, [Accuracy("gateway", "slm", 4, 1, 44, 1.0, 0.0, 0.0, 1.0)],
                          [1, 4])  # fmt: skip
    assert table.splitlines()[2].split(" | ")[4:6] == ["", "55"]  # c=1 missing, c=4 55 tok/s


def test_a_run_without_the_accuracy_pass_has_no_projection() -> None:
    """``--accuracy-items 0``: no counters from an accuracy pass, so the LLM-only
    target has no routing trace; the section is written without the projection."""
    result = _result()
    for a in result["accuracy"]:
        a.update(items=0, correct=0, llm_calls_per_token=None, slm_forwards_per_token=None)
    text = section(result, [PAIR])
    assert "GPU projection" not in text and "### Latency vs concurrency" in text
