"""``benchmarks/edge.py`` end to end on a tiny run: two processes, an injected delay."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.edge import MODES, main
from tests.gateway.live_gateway import demo_pair, tiny_pair_with_template


def test_edge_benchmark_measures_the_injected_delay(model_dirs, tmp_path: Path) -> None:
    slm, llm = demo_pair() or tiny_pair_with_template(model_dirs, tmp_path)
    out = tmp_path / "edge.json"
    # The demo SLM is sure of nearly all of its first 12 tokens (1 - max prob < 0.01):
    # a low threshold still sends some of them to the LLM, so every remote row has calls.
    args = ["--slm", str(slm), "--llm", str(llm), "--items", "2", "--max-tokens", "12",
            "--rtt-ms", "0,60", "--concurrency", "2", "--policy", "confidence",
            "--threshold", "0.001", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    rows = {(r["mode"], r["rtt_ms"]): r for r in json.loads(out.read_text())["rows"]}
    assert {m for m, _ in rows} == set(MODES) and ("routed-local", 60.0) not in rows
    for (mode, _), r in rows.items():
        assert r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["fallback_tokens"] == 0
        if mode != "routed-local":
            assert r["bytes_sent_per_token"] > 0 and r["calls"] > 0
    remote = rows[("llm-remote", 60.0)]
    assert remote["llm_share"] == 1.0 and remote["calls_per_token"] <= 0.5  # spans of tokens
    assert remote["added_ms_per_call"] > 45  # one 60 ms round trip per call, less noise
    local = rows[("routed-local", 0.0)]
    assert local["threshold"] == 0.001 and local["llm_share"] > 0  # --threshold is applied
    assert rows[("routed-remote", 0.0)]["llm_share"] == local["llm_share"]  # same tokens
