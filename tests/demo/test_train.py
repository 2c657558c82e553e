"""The demo trainer: deterministic (eager, bf16, compiled), fp32 weights on disk, and its
answer-only loss equal to the Hugging Face loss it replaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from demo.data import batches
from demo.train import (
    ModelSpec,
    answer_loss,
    encode_stream,
    hidden_states_fn,
    llama_config,
    train_model,
)

TINY = dict(hidden=32, layers=1, heads=2, ffn=64, steps=3, lr=1e-3, batch=4, warmup=1)
MODES = {
    "fp32": {},
    "bf16": {"bf16": True},
    "compiled": {"bf16": True, "compile": True},
    "sdpa": {"attn": "sdpa"},  # the SLM's training attention
}


def _train(tmp: Path, name: str, mode: str) -> dict[str, torch.Tensor]:
    tok = AutoTokenizer.from_pretrained("models/demo/llm")
    bf16 = MODES[mode].get("bf16", False)
    spec = ModelSpec(name, **MODES[mode], **TINY)  # type: ignore[arg-type]
    stats = train_model(spec, tok, tmp / name, n_items=spec.steps * spec.batch, log_every=1)
    losses = [r["loss"] for r in stats["log"]]  # type: ignore[union-attr]
    assert len(losses) == spec.steps and all(0 < x < 20 for x in losses)
    assert stats["spec"]["bf16"] is bf16  # type: ignore[index]
    AutoModelForCausalLM.from_pretrained(str(tmp / name))  # a standard HF folder
    return load_file(str(tmp / name / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    """Two same-seed runs per mode, trained once for the whole module."""
    tmp = tmp_path_factory.mktemp("train")
    return {f"{m}{i}": _train(tmp, f"{m}{i}", m) for m in MODES for i in (1, 2)}


@pytest.mark.parametrize("precision", list(MODES))
def test_same_seed_same_weights_saved_in_fp32(runs: dict, precision: str) -> None:
    a, b = runs[f"{precision}1"], runs[f"{precision}2"]
    assert {t.dtype for t in a.values()} == {torch.float32}
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_changes_the_arithmetic(runs: dict) -> None:
    a, b = runs["fp321"], runs["bf161"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


def _tiny_model_and_batch(attn: str) -> tuple:
    from transformers import LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained("models/demo/llm")
    torch.manual_seed(0)
    cfg = llama_config(ModelSpec("t", **TINY), tok)  # type: ignore[arg-type]
    model = LlamaForCausalLM._from_config(cfg, attn_implementation=attn)
    ids, labels = next(batches(encode_stream(tok, 8), 8, tok.pad_token_id, seed=0))
    assert (ids == tok.pad_token_id).any()  # the batch really has padding
    return model, ids, labels, tok.pad_token_id


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_answer_loss_equals_the_hf_loss_with_mask(attn: str) -> None:
    """No attention mask is needed: batches are right-padded, and causal attention
    never lets a real token see a later pad; the LM head on answer tokens only
    gives the same mean cross-entropy."""
    model, ids, labels, pad = _tiny_model_and_batch(attn)
    ref = model(input_ids=ids, attention_mask=ids != pad, labels=labels).loss
    ours = answer_loss(hidden_states_fn(model, False), model.lm_head, ids, labels)
    assert torch.allclose(ours, ref, atol=1e-5), (ours.item(), ref.item())


def test_compiled_loss_and_gradients_match_eager() -> None:
    model, ids, labels, _ = _tiny_model_and_batch("eager")
    params = list(model.parameters())
    out = {}
    for compiled in (False, True):
        loss = answer_loss(hidden_states_fn(model, compiled), model.lm_head, ids, labels)
        out[compiled] = (loss, torch.autograd.grad(loss, params))
    assert torch.allclose(out[True][0], out[False][0], atol=1e-5)
    for g_compiled, g_eager in zip(out[True][1], out[False][1], strict=True):
        assert torch.allclose(g_compiled, g_eager, atol=1e-6, rtol=1e-3)


def test_encoded_stream_is_shared_as_a_prefix() -> None:
    tok = AutoTokenizer.from_pretrained("models/demo/llm")
    assert encode_stream(tok, 5) == encode_stream(tok, 12)[:5]


def test_spec_rejects_an_unknown_attention_kernel() -> None:
    with pytest.raises(ValueError, match="attn must be eager or sdpa, got 'flash'"):
        ModelSpec("t", attn="flash", **TINY)  # type: ignore[arg-type]
