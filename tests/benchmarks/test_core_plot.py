"""The core benchmark's plot: which rows it draws (best window per concurrency,
deferral off) and that it writes a PNG from a `citer bench` JSON."""

from __future__ import annotations

from pathlib import Path

from benchmarks.core_plot import best_rows, plot


def _row(policy: str, c: int, k: int, tps: float, speedup: float | None, defer: int = 0) -> dict:
    return {"policy": policy, "concurrency": c, "window": k, "defer_steps": defer,
            "tokens_per_s": tps, "speedup": speedup, "bound": 2.0}  # fmt: skip


ROWS = [
    _row("llm", 16, 4, 900.0, None),
    _row("llm", 16, 8, 1000.0, None),
    _row("citer@0.2", 16, 4, 1100.0, 1.22),
    _row("citer@0.2", 16, 8, 1150.0, 1.15),
    _row("citer@0.2", 16, 8, 1300.0, 1.30, defer=4),  # deferral on: not drawn
    _row("citer@0.2", 4, 8, 700.0, 1.10),
]


def test_best_rows_pick_the_best_window_without_deferral() -> None:
    best = best_rows(ROWS, "citer@0.2")
    assert list(best) == [4, 16]
    assert (best[16]["window"], best[16]["speedup"]) == (4, 1.22)
    assert best_rows(ROWS, "llm")[16]["window"] == 8  # LLM-only: its fastest window
    assert best_rows(ROWS, "entropy") == {}


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = plot({"before": ROWS[:3], "after": ROWS}, ["citer@0.2", "entropy"], tmp_path / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
