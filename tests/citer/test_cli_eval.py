"""`citer eval` as a user runs it: the installed console script, real model folders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLM = ROOT / "models" / "demo" / "slm"
CITER = Path(sys.executable).with_name("citer")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CITER), "eval", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_json_report_fields() -> None:
    p = run("--model", str(SLM), "--split", "test", "--limit", "8", "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["n"] == 8
    assert set(rep["per_family"]) == {"arith", "compare", "list", "word"}
    assert 0.0 <= rep["accuracy"] <= 1.0
    assert rep["tokens"] > 8 * 10 and rep["tokens_per_s"] > 0


def test_table_output_and_jsonl_data(tmp_path: Path) -> None:
    from tasks.splits import load_split
    from tasks.types import write_jsonl

    data = tmp_path / "mine.jsonl"
    write_jsonl(load_split("validation", 4, families=["compare"]), data)
    p = run("--model", str(SLM), "--data", str(data))
    assert p.returncode == 0, p.stderr
    assert "compare" in p.stdout and "n=4" in p.stdout and "arith" not in p.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nope/model"], "nope/model: model folder does not exist"),
        (["--model", str(SLM), "--families", "poetry"], "unknown task family 'poetry'"),
        (["--model", str(SLM), "--limit", "0"], "--limit must be >= 1"),
        (["--model", str(SLM), "--split", "train"], "pass --limit"),
        (["--policy", "citer", "--router-card", "nope/card"], "router card nope/card: missing"),
        (["--policy", "confidence", "--window", "0"], "--window must be >= 1"),
        (["--policy", "slm", "--router-card", "x"], "only used with --policy citer"),
        (["--slm", str(SLM), "--llm", "nope/llm"], "--llm nope/llm: model folder does not exist"),
        (["--engine", "vllm", "--model", str(SLM)], "--model runs on the hf engine"),
    ],
)
def test_bad_input_is_one_line_error(args: list[str], needle: str) -> None:
    p = run(*args)
    assert p.returncode == 2
    assert needle in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_the_shipped_card_pins_the_shipped_slm_and_refuses_another(tmp_path: Path) -> None:
    from router_models.card import CARD_JSON, read_card
    from router_models.vocab import weights_fingerprint

    card = ROOT / "models" / "demo" / "router"
    assert read_card(card).slm_weights == weights_fingerprint(SLM)  # not a stale card
    other = tmp_path / "card"
    shutil.copytree(card, other)
    d = json.loads((other / CARD_JSON).read_text())
    d["model_pair"]["slm_weights"] = "0" * 64  # as if trained on a retrained SLM
    (other / CARD_JSON).write_text(json.dumps(d))
    p = run("--policy", "citer", "--router-card", str(other), "--limit", "1")
    assert p.returncode == 2
    assert f"expects SLM weights fingerprint {'0' * 64}" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_vllm_engine_without_vllm_says_how_to_install_it() -> None:
    argv = ["eval", "--engine", "vllm", "--policy", "slm", "--limit", "1"]
    code = f"import sys; sys.modules['vllm'] = None; import citer.cli as c; exit(c.main({argv}))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2
    assert "the vllm engine needs vLLM: `make vllm-venv`" in p.stderr


def test_routed_eval_reports_share_time_split_and_dump(tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    p = run("--policy", "confidence", "--threshold", "0.3", "--limit", "6", "--window", "4",
            "--concurrency", "3", "--json", "--dump", str(dump))  # fmt: skip
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert 0.0 < rep["llm_token_share"] < 1.0  # confidence 0.3 mixes both models
    assert set(rep["time_share"]) == {"slm", "router", "llm", "scheduler"}
    assert abs(sum(rep["time_share"].values()) - 1.0) < 0.01
    rows = [json.loads(x) for x in dump.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["id"] == "test-0"
    r = rows[0]
    assert len(r["token_ids"]) == len(r["sources"]) == len(r["scores"]) > 0
    assert {s for row in rows for s in row["sources"]} == {"slm", "llm"}
    llm_rows = sum(s == "llm" for row in rows for s in row["sources"])
    # the dump drops each answer's eos token, the share counts it: a few tokens apart
    assert abs(llm_rows / sum(len(row["sources"]) for row in rows) - rep["llm_token_share"]) < 0.02


def test_malformed_jsonl_and_mismatched_tokenizer(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    p = run("--model", str(SLM), "--data", str(bad))
    assert p.returncode == 2 and f"{bad}:1: missing field 'reference'" in p.stderr
    m = tmp_path / "m"
    shutil.copytree(SLM, m)
    cfg = json.loads((m / "config.json").read_text())
    cfg["vocab_size"] = 64
    (m / "config.json").write_text(json.dumps(cfg))
    p = run("--model", str(m), "--limit", "1")
    assert p.returncode == 2 and "tokenizer does not match the model" in p.stderr


def test_eval_reads_public_benchmark_lines_with_their_verifiers(tmp_path: Path) -> None:
    rows = [{"id": f"g{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}
            for i in range(3)]  # fmt: skip
    data = tmp_path / "gsm.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = run("--policy", "llm", "--data", str(data), "--max-tokens", "24", "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["n"] == 3 and set(rep["per_family"]) == {"gsm8k"}
    assert rep["tokens"] <= 3 * 24 and rep["llm_token_share"] == 1.0
