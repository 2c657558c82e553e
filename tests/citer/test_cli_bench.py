"""`citer bench` (the core benchmark) as a user runs it, on the shipped demo pair and card."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from citer.bench_cmd import parse_routed, parse_windows

ROOT = Path(__file__).resolve().parents[2]
CITER = Path(sys.executable).with_name("citer")


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CITER), "bench", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)  # fmt: skip


def test_parse_routed() -> None:
    assert parse_routed("confidence:0.4,citer@0.2,") == [
        ("confidence", 0.4, None),
        ("citer", None, 0.2),
    ]


def test_parse_windows() -> None:
    assert parse_windows("1,4,4a,4f,") == [(1, ""), (4, ""), (4, "a"), (4, "f")]
    for bad in ("0", "a", "4b", "-1a", "4af", "4fa"):
        with pytest.raises(ValueError, match="expected an integer >= 1, optionally"):
            parse_windows(bad)


@pytest.mark.parametrize("spec", ["citer", "citer@", "citer:high", "@0.2", "confidence=0.4"])
def test_parse_routed_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="expected policy:threshold or policy@share"):
        parse_routed(spec)


def test_citer_card_at_a_target_share(tmp_path: Path) -> None:
    from router_models.card import read_card
    from router_models.share import threshold_for_share

    out = tmp_path / "core.json"
    p = bench("--items", "2", "--concurrency", "2", "--window", "4,4a", "--max-tokens", "24",
              "--routed", "citer@0.2,confidence:0.4", "--defer", "0,2",
              "--out", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    data = json.loads(out.read_text())
    fixed = [r for r in data if not r["adaptive"]]
    deferred = {r["policy"]: r for r in fixed if r["defer_steps"] == 2}
    rows = {r["policy"]: r for r in fixed if r["defer_steps"] == 0}
    adaptive = {r["policy"]: r for r in data if r["adaptive"] and r["defer_steps"] == 0}
    assert set(rows) == {"slm", "llm", "citer@0.2", "confidence"}
    assert set(deferred) == {"citer@0.2", "confidence"}  # deferral is for routed runs only
    for name in ("citer@0.2", "confidence"):  # deferral changes timing, never tokens
        assert deferred[name]["tokens"] == rows[name]["tokens"]
        assert deferred[name]["accuracy"] == rows[name]["accuracy"]
        # adaptive run-ahead: the same tokens (its draft rows: tests/engines)
        assert adaptive[name]["tokens"] == rows[name]["tokens"]
        assert adaptive[name]["accuracy"] == rows[name]["accuracy"]
        assert adaptive[name]["slm_rows_per_token"] >= 1.0
    # the cost model's inputs, per run: LLM passes per token, their batch, SLM rows per token
    assert rows["llm"]["llm_passes_per_token"] > 0 and rows["llm"]["slm_rows_per_token"] == 0
    assert rows["slm"]["llm_passes_per_token"] == 0 and rows["slm"]["slm_rows_per_token"] >= 1
    assert 1 <= rows["citer@0.2"]["llm_batch"] <= 2
    assert rows["slm"]["llm_share"] == 0.0 and rows["llm"]["llm_share"] == 1.0
    card = read_card(ROOT / "models" / "demo" / "router")
    assert rows["citer@0.2"]["threshold"] == pytest.approx(threshold_for_share(card, 0.2))
    for name in ("citer@0.2", "confidence"):  # the cost-model bound beside the measured speed-up
        assert rows[name]["bound"] >= 1.0 and rows[name]["speedup"] > 0
    assert 0.0 < rows["citer@0.2"]["llm_share"] < 1.0
    # where the time goes, ms per token: SLM / router / LLM / scheduler bookkeeping
    slm_ms, router_ms, llm_ms, sched_ms = rows["citer@0.2"]["ms_tok"]
    assert slm_ms > 0 and router_ms > 0 and llm_ms > 0 and sched_ms > 0
    assert rows["llm"]["ms_tok"][0] == 0 and rows["slm"]["ms_tok"][2] == 0
    # of the LLM's tokens at routed positions, the share equal to the SLM's draft there
    assert 0.0 <= rows["citer@0.2"]["llm_agreed"] <= 1.0 and rows["llm"]["llm_agreed"] == 0.0
    md = out.with_suffix(".md").read_text()
    assert "| hf | citer@0.2 |" in md and "| 2 | 4a | 0 |" in md


@pytest.mark.parametrize(
    ("routed", "message"),
    [("citer@high", "expected policy:threshold or policy@share"),
     ("confidence@0.2", "target_share needs a calibrated router card")],
)  # fmt: skip
def test_bad_routed_is_a_one_line_error(routed: str, message: str, tmp_path: Path) -> None:
    p = bench("--items", "1", "--routed", routed, "--out", str(tmp_path / "x.json"))
    assert p.returncode == 2
    assert message in p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.json").exists()


def test_a_users_task_file_and_verify_on_and_off(tmp_path: Path) -> None:
    """--data takes the items from a task file (GSM8K lines here); --verify 1,0 runs each
    routed config with one LLM pass settling a whole window and with one routed position
    per pass: the same tokens, no more LLM passes with it on."""
    data = tmp_path / "gsm8k.jsonl"
    lines = [{"id": f"q{i}", "question": f"Tom has {i} apples and buys 3. How many now?",
              "answer": str(i + 3)} for i in range(3)]  # fmt: skip
    data.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "core.json"
    p = bench("--data", str(data), "--items", "3", "--concurrency", "3", "--window", "8",
              "--max-tokens", "24", "--routed", "citer@0.3", "--defer", "0", "--verify", "1,0",
              "--out", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = {(r["policy"], r["verify"]): r for r in json.loads(out.read_text())}
    on, off = rows[("citer@0.3", True)], rows[("citer@0.3", False)]
    assert on["n"] == off["n"] == 3 and on["tokens"] == off["tokens"] > 0
    assert on["llm_share"] == off["llm_share"] > 0
    assert on["llm_passes_per_token"] <= off["llm_passes_per_token"]
    assert "| 3 | 8 nv | 0 |" in out.with_suffix(".md").read_text()
    short = bench("--data", str(data), "--items", "4", "--concurrency", "1", "--routed",
                  "citer@0.3", "--out", str(tmp_path / "x.json"))  # fmt: skip
    assert short.returncode == 2
    assert "3 items; --items and --concurrency need 4" in short.stderr.strip().splitlines()[-1]
