"""The demo trainer: deterministic, fp32 weights on disk with or without bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from demo.train import ModelSpec, train_model

TINY = dict(hidden=32, layers=1, heads=2, ffn=64, steps=3, lr=1e-3, batch=4, warmup=1)


def _train(tmp: Path, name: str, bf16: bool) -> dict[str, torch.Tensor]:
    tok = AutoTokenizer.from_pretrained("models/demo/llm")
    spec = ModelSpec(name, bf16=bf16, **TINY)  # type: ignore[arg-type]
    stats = train_model(spec, tok, tmp / name, n_items=spec.steps * spec.batch, log_every=1)
    losses = [r["loss"] for r in stats["log"]]  # type: ignore[union-attr]
    assert len(losses) == spec.steps and all(0 < x < 20 for x in losses)
    assert stats["spec"]["bf16"] is bf16  # type: ignore[index]
    AutoModelForCausalLM.from_pretrained(str(tmp / name))  # a standard HF folder
    return load_file(str(tmp / name / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    """Two same-seed runs per precision, trained once for the whole module."""
    tmp = tmp_path_factory.mktemp("train")
    return {
        f"{p}{i}": _train(tmp, f"{p}{i}", p == "bf16") for p in ("fp32", "bf16") for i in (1, 2)
    }


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_weights_saved_in_fp32(runs: dict, precision: str) -> None:
    a, b = runs[f"{precision}1"], runs[f"{precision}2"]
    assert {t.dtype for t in a.values()} == {torch.float32}
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_changes_the_arithmetic(runs: dict) -> None:
    a, b = runs["fp321"], runs["bf161"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
