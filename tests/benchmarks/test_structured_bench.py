"""``benchmarks/structured.py`` on a tiny run: every JSON answer that stops parses and
validates, for each policy, and the masking cost is measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import structured
from tests.gateway.live_gateway import demo_pair


def test_structured_benchmark_on_a_few_items(tmp_path: Path, monkeypatch) -> None:
    slm, llm = demo_pair() or (None, None)
    if slm is None:
        pytest.skip("the demo pair is not built (make demo-models)")
    out = tmp_path / "s.json"
    argv = ["structured", "--items", "4", "--concurrency", "2", "--max-tokens", "160",
            "--slm", str(slm), "--llm", str(llm), "--log", str(tmp_path / "gw.log"),
            "--out", str(out), "--mask-tokenizer", str(tmp_path / "none")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    structured.main()
    res = json.loads(out.read_text())
    rows = {(r["model"], r["variant"]): r for r in res["rows"]}
    assert set(rows) == {(m, v) for m in structured.MODELS for v in structured.VARIANTS}
    for (model, variant), r in rows.items():
        if variant != "free text":
            assert r["parsed"] == r["valid"] == r["stopped"]  # cut by max_tokens, or valid
        if variant == "answer":
            assert r["valid"] == 1.0 and r["forced_share"] > 0.3
        if model == "slm":
            assert r["llm_share"] == 0.0
    assert res["masking"]["masked_rows"] > 0 and 0 < res["masking"]["mask_share_of_step"] < 1
    assert res["masking_alone"] is None  # no such tokenizer folder: phase 3 skipped
