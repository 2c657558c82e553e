"""The real-pair accuracy report (its decoding needs the real pair: make
bench-real-accuracy): per-config accuracy and share from the per-item cache, paired
bootstrap intervals, APGR / CPT, and results of another pair or card never mixed in."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.real_accuracy_report import (
    apgr,
    card_digest,
    card_names,
    cpt,
    paired_interval,
    write_report,
)


def test_report_reads_only_this_pairs_rows_and_pairs_items(tmp_path: Path) -> None:
    digest = f"{'a' * 12}-{'b' * 12}"
    cards = {}
    for name in ("citer", "citer-s"):
        cards[name] = tmp_path / name
        cards[name].mkdir()
        (cards[name] / "router.safetensors").write_bytes(name.encode())
    rows = []
    for i in range(20):
        base = {"pair": digest, "dataset": "gsm8k", "max_tokens": 320, "id": f"g{i}"}
        rows.append({**base, "config": "llm", "correct": i < 15, "tokens": 10, "llm_tokens": 10})
        rows.append({**base, "config": "slm", "correct": i < 5, "tokens": 10, "llm_tokens": 0})
        rows.append({**base, "config": "confidence:0.3", "correct": i < 12, "tokens": 10,
                     "llm_tokens": 2})  # fmt: skip
        rows.append({**base, "config": f"citer@{card_digest(cards['citer'])}:0.4",
                     "correct": i < 14, "tokens": 10, "llm_tokens": 1})  # fmt: skip
        rows.append({**base, "config": f"citer@{card_digest(cards['citer-s'])}:0.9",
                     "correct": i < 10, "tokens": 10, "llm_tokens": 1})  # fmt: skip
        rows.append({**base, "config": "citer@0ther:0.4", "correct": False, "tokens": 10,
                     "llm_tokens": 1})  # fmt: skip  # another card's run: never shown
        rows.append({**base, "pair": "other", "config": "llm", "correct": False, "tokens": 1,
                     "llm_tokens": 1})  # fmt: skip
    cache = tmp_path / "acc.jsonl"
    cache.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = argparse.Namespace(cache=str(cache), plot=str(tmp_path / "acc.png"))
    table = write_report(args, digest, cards).splitlines()
    assert table[2].startswith("| gsm8k | slm | 20 | 25.0% | 0.0% | 0.00 | 0 | [-")
    assert table[3] == "| gsm8k | llm | 20 | 75.0% | 100.0% | 1.00 | 0 | - |"
    assert table[4].startswith("| gsm8k | confidence:0.3 | 20 | 60.0% | 20.0% | 0.70 | 0 | [")
    assert table[5].startswith("| gsm8k | citer-s:0.9 | 20 | 50.0% | 10.0% | 0.50 | 0 | [")
    assert table[6].startswith("| gsm8k | citer:0.4 | 20 | 70.0% | 10.0% | 0.90 | 0 | [")
    assert table[7] == ""  # then the APGR table; the other card's rows are in neither
    assert "| gsm8k | citer | 1 | 0.900 | 5.6% | 8.9% |" in table
    assert not any("0ther" in line for line in table)
    assert (tmp_path / "acc.md").read_text().splitlines() == table
    assert (tmp_path / "acc.png").stat().st_size > 10_000
    lo, hi = paired_interval([True] * 12 + [False] * 8, [True] * 15 + [False] * 5)
    assert lo < -15 < hi <= 0  # 3 items of 20 lost, nothing gained


def test_card_names_outlive_the_card_files_but_never_cross_weights(tmp_path: Path) -> None:
    cards = {n: tmp_path / n for n in ("citer", "citer-class")}
    for n, p in cards.items():
        p.mkdir()
        (p / "router.safetensors").write_bytes(n.encode())
    known = tmp_path / "acc-cards.json"
    first = card_names(cards, known)
    assert first == {card_digest(p): n for n, p in cards.items()}
    old_class = card_digest(cards["citer-class"])
    (cards["citer-class"] / "router.safetensors").unlink()  # a clean checkout: build/ is gone
    assert card_names(cards, known) == first  # recorded names keep the rows shown
    (cards["citer"] / "router.safetensors").write_bytes(b"retrained")
    names = card_names(cards, known)
    assert names == {card_digest(cards["citer"]): "citer", old_class: "citer-class"}
    assert json.loads(known.read_text()) == names


def test_apgr_and_cpt_follow_the_piecewise_linear_curve() -> None:
    assert apgr([]) == pytest.approx(0.5)  # the chord from the SLM to the LLM alone
    assert apgr([(0.1, 0.9)]) == pytest.approx(0.1 * 0.9 / 2 + 0.9 * (0.9 + 1) / 2)
    assert apgr([(0.5, 0.2), (0.1, 0.4)]) == apgr([(0.1, 0.4), (0.5, 0.2)])  # order-free
    assert cpt([(0.1, 0.9)], 0.5) == pytest.approx(0.1 * 0.5 / 0.9)
    assert cpt([(0.1, 0.9)], 0.95) == pytest.approx(0.1 + 0.9 * 0.5)
    assert cpt([(0.1, 1.2)], 1.0) == pytest.approx(0.1 / 1.2)  # routing beats the LLM
    assert cpt([], 0.8) == pytest.approx(0.8)


def test_real_serving_table_compares_with_both_llm_only_servers() -> None:
    from benchmarks.real_serving import table
    from benchmarks.serving_report import Point

    def point(engine: str, target: str, tok_s: float, share: float | None) -> Point:
        return Point(engine, target, 16, 32, 4096, 1.0, tok_s, 900.0, 990.0, 40.0, 60.0,
                     share, None, None, None, None, 1.0, 1.0)  # fmt: skip

    rows = table([point("gateway", "citer", 30.0, 0.1), point("gateway", "llm", 20.0, 1.0),
                  point("vllm", "llm", 25.0, None)]).splitlines()  # fmt: skip
    assert rows[2] == "| gateway | citer | 16 | 30.0 | 900 | 40 | 0.100 | 1.50x | 1.20x |"
    assert rows[4] == "| vllm | llm | 16 | 25.0 | 900 | 40 |  | 1.25x | 1.00x |"


def test_paired_comparison_uses_only_the_items_both_configs_decoded() -> None:
    from benchmarks.real_paired import compare

    def rows(right: int, n: int, llm: int) -> dict[str, dict]:
        return {f"g{i}": {"correct": i < right, "tokens": 10, "llm_tokens": llm} for i in range(n)}

    got = {"citer:0.4": rows(14, 20, 2), "llm": rows(15, 30, 10)}
    line = compare(got, "citer:0.4", "llm")
    assert line.startswith("| citer:0.4 | llm | 20 | 14 (20.0%) | 15 (100.0%) | -5.0 | [-")
    with pytest.raises(SystemExit, match="no cached rows for 'entropy:0.1'"):
        compare(got, "entropy:0.1", "llm")
