"""Medians over several `citer bench` runs: each configuration's median and range, the
deterministic counts, and the best window per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.core_runs import main, spread, table


def _row(policy: str, c: int, k: int, tps: float, speedup: float | None) -> dict:
    return {"policy": policy, "concurrency": c, "window": k, "defer_steps": 0,
            "tokens_per_s": tps, "speedup": speedup, "bound": 1.5 if speedup else None,
            "llm_passes_per_token": 0.0153, "llm_batch": 8.67,
            "slm_rows_per_token": 1.31}  # fmt: skip


def _run(llm: float, routed: float) -> list[dict]:
    return [_row("llm", 16, 8, llm, None), _row("citer@0.2", 16, 8, routed, routed / llm),
            _row("citer@0.2", 16, 4, routed / 2, routed / 2 / llm)]  # fmt: skip


RUNS = [_run(1000.0, 1200.0), _run(1000.0, 1500.0), _run(800.0, 1040.0)]


def test_spread_is_the_median_with_its_range() -> None:
    assert spread([1.2, 1.5, 1.3], ".2f", "x") == "1.30x (1.20x-1.50x)"
    assert spread([2.0, 2.0], ".1f") == "2.0"
    assert spread([], ".1f") == ""


def test_table_takes_the_median_of_each_paired_speed_up() -> None:
    lines = table(RUNS, ["llm", "citer@0.2"]).splitlines()
    routed = next(line for line in lines if line.startswith("| citer@0.2 | 16 | 8 |"))
    # speed-ups 1.20, 1.50, 1.30: the median is 1.30 (not 1200/1000 of the median speeds)
    assert "| 3 | 1200 (1040-1500) | 1.30x (1.20x-1.50x) | 87% (80%-100%) |" in routed
    assert routed.endswith("| 0.0153 | 8.7 | 1.31 |")
    assert not any(line.startswith("| entropy") for line in lines)


def test_main_prints_the_best_window_of_each_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for i, rows in enumerate(RUNS):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(rows))
    main([str(p) for p in paths])
    out = capsys.readouterr().out
    assert "| citer@0.2 | 16 | 1.20x (k=8), 1.50x (k=8), 1.30x (k=8) | 1.30x |" in out
