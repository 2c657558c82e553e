"""weights_fingerprint: pins a router card to the SLM weights it was trained on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

from router_models.vocab import weights_fingerprint


def tiny_llama(folder: Path, seed: int, dtype: torch.dtype = torch.float32) -> Path:
    """A 2-layer Llama saved the way a user's checkpoint is (``save_pretrained``)."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4)  # fmt: skip
    LlamaForCausalLM(cfg).to(dtype).save_pretrained(str(folder))
    return folder


def test_same_weights_same_fingerprint_and_retrained_ones_differ(tmp_path: Path) -> None:
    a = weights_fingerprint(tiny_llama(tmp_path / "a", seed=0))
    assert len(a) == 64 and int(a, 16) >= 0  # sha256 hex
    assert weights_fingerprint(tiny_llama(tmp_path / "a2", seed=0)) == a  # rebuilt bit for bit
    assert weights_fingerprint(tiny_llama(tmp_path / "b", seed=1)) != a  # same shapes, retrained
    assert weights_fingerprint(tiny_llama(tmp_path / "c", seed=0, dtype=torch.bfloat16)) != a


def test_one_changed_value_in_the_read_head_changes_it(tmp_path: Path) -> None:
    src = tiny_llama(tmp_path / "a", seed=0)
    dst = tmp_path / "edited"
    shutil.copytree(src, dst)
    w = load_file(str(dst / "model.safetensors"))
    w["model.norm.weight"][0] += 1.0  # the first values of every tensor are read
    save_file(w, str(dst / "model.safetensors"), metadata={"format": "pt"})
    assert weights_fingerprint(dst) != weights_fingerprint(src)


def test_sharded_checkpoints_hash_every_shard(tmp_path: Path) -> None:
    src = tiny_llama(tmp_path / "a", seed=0)
    w = load_file(str(src / "model.safetensors"))
    names = sorted(w, reverse=True)  # shards need not follow name order
    half = len(names) // 2
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    save_file({k: w[k] for k in names}, str(one / "model.safetensors"))
    save_file({k: w[k] for k in names[:half]}, str(two / "model-00001-of-00002.safetensors"))
    save_file({k: w[k] for k in names[half:]}, str(two / "model-00002-of-00002.safetensors"))
    assert weights_fingerprint(two) == weights_fingerprint(one)  # same tensors, any sharding
    (two / "model-00002-of-00002.safetensors").unlink()
    assert weights_fingerprint(two) != weights_fingerprint(one)


def test_no_safetensors_means_unpinned_and_corrupt_files_are_named(tmp_path: Path) -> None:
    assert weights_fingerprint(tmp_path) == ""
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"cannot read weights .*model\.safetensors"):
        weights_fingerprint(tmp_path)
