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


@pytest.mark.parametrize("bf16", [False, True])
def test_same_seed_same_weights_saved_in_fp32(tmp_path: Path, bf16: bool) -> None:
    a = _train(tmp_path, "a", bf16)
    b = _train(tmp_path, "b", bf16)
    assert {t.dtype for t in a.values()} == {torch.float32}
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_changes_the_arithmetic(tmp_path: Path) -> None:
    a, b = _train(tmp_path, "fp32", False), _train(tmp_path, "bf16", True)
    assert any(not torch.equal(a[k], b[k]) for k in a)
