"""The real-pair accuracy report (its decoding needs the real pair: make
bench-real-accuracy): per-config accuracy and share from the per-item cache, paired
bootstrap intervals, and results of another pair never mixed in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.real_accuracy import card_digest, paired_interval, report


def test_report_reads_only_this_pairs_rows_and_pairs_items(tmp_path: Path) -> None:
    pair = tmp_path / "pair"
    pair.mkdir()
    meta = {"slm": {"gguf_sha256": "a" * 64}, "llm": {"gguf_sha256": "b" * 64}}
    (pair / "pair.json").write_text(json.dumps(meta))
    digest = f"{'a' * 12}-{'b' * 12}"
    card = tmp_path / "card"
    card.mkdir()
    (card / "router.safetensors").write_bytes(b"weights")
    rows = []
    for i in range(20):
        base = {"pair": digest, "dataset": "gsm8k", "max_tokens": 320, "id": f"g{i}"}
        rows.append({**base, "config": "llm", "correct": i < 15, "tokens": 10, "llm_tokens": 10})
        rows.append({**base, "config": "slm", "correct": i < 5, "tokens": 10, "llm_tokens": 0})
        rows.append({**base, "config": "confidence:0.3", "correct": i < 12, "tokens": 10,
                     "llm_tokens": 2})  # fmt: skip
        rows.append({**base, "config": f"citer@{card_digest(card)}:0.4", "correct": i < 14,
                     "tokens": 10, "llm_tokens": 1})  # fmt: skip
        rows.append({**base, "config": "citer@0ther:0.4", "correct": False, "tokens": 10,
                     "llm_tokens": 1})  # fmt: skip  # another card's run: never shown
        rows.append({**base, "pair": "other", "config": "llm", "correct": False, "tokens": 1,
                     "llm_tokens": 1})  # fmt: skip
    cache = tmp_path / "acc.jsonl"
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = argparse.Namespace(pair=str(pair), cache=str(cache), datasets="gsm8k", card=str(card),
                              configs="llm,confidence:0.3,citer:0.4,random:0.1")  # fmt: skip
    table = report(args).splitlines()
    assert table[2] == "| gsm8k | llm | 20 | 75.0% | 100.0% | 1.00 | 0 | - |"
    assert table[3].startswith("| gsm8k | confidence:0.3 | 20 | 60.0% | 20.0% | 0.70 | 0 | [")
    assert table[4].startswith("| gsm8k | citer:0.4 | 20 | 70.0% | 10.0% | 0.90 | 0 | [")
    assert len(table) == 5  # no random rows: no line
    lo, hi = paired_interval([True] * 12 + [False] * 8, [True] * 15 + [False] * 5)
    assert lo < -15 < hi <= 0  # 3 items of 20 lost, nothing gained
