"""demo.trial: spec overrides, reading a run's records from a console log, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.trial import overrides, plot, records, train


def test_overrides_are_typed_like_the_spec() -> None:
    assert overrides(["lr=0.001", "steps=2800", "bf16=0", "compile=1"]) == {
        "lr": 0.001,
        "steps": 2800,
        "bf16": False,
        "compile": True,
    }


def test_overrides_of_the_slm_recipe() -> None:
    # attn is a field of both recipes; its type comes from the SLM's spec ("sdpa").
    assert overrides(["seed=3", "attn=eager"], base="slm") == {"seed": 3, "attn": "eager"}
    with pytest.raises(ValueError, match="expected a base recipe"):
        overrides(["seed=3"], base="mlm")


@pytest.mark.parametrize("bad", ["lr", "nope=1", "name=x"])
def test_unknown_or_malformed_override(bad: str) -> None:
    with pytest.raises(ValueError, match="expected field=value"):
        overrides([bad])


def _console_log(tmp_path: Path) -> Path:
    loss = [{"step": s, "loss": 2.0 / s, "tokens": s, "lr": 1e-3, "elapsed_s": s} for s in
            range(50, 1250, 50)]  # fmt: skip
    val = {"step": 800, "val_accuracy": 0.25, "val_per_family": {"arith": 0.5}}
    lines = [f"train llm:  4%|  | 49/1200 [00:49<19:00]\r{json.dumps(r)}" for r in loss]
    lines.insert(16, json.dumps(val))
    lines.insert(3, json.dumps(loss[2]))  # a record printed twice counts once
    lines.append('{"step": 1200, "loss": 0.1  train llm: 100%')  # cut off: skipped
    path = tmp_path / "run.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_records_from_a_console_log(tmp_path: Path) -> None:
    recs = records(_console_log(tmp_path))
    assert [r["step"] for r in recs if "loss" in r] == list(range(50, 1250, 50))
    assert [r for r in recs if "val_accuracy" in r][0]["val_per_family"] == {"arith": 0.5}


def test_plot_writes_a_png(tmp_path: Path) -> None:
    log = _console_log(tmp_path)
    out = tmp_path / "curves.png"
    plot(out, [f"trial={log}", str(log)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_without_a_tokenizer_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no build/tokenizer here
    with pytest.raises(SystemExit, match="run python -m demo.build --stages tokenizer first"):
        train("x", ["steps=1"])
    assert not (tmp_path / "build" / "trial").exists()
