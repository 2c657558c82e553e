"""Shared fixtures: a tiny random SLM/LLM pair (Llama, 100-token vocab) that
shares a character-level tokenizer, saved as ordinary HF model folders."""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path

import pytest

# tests/vllm run in the vLLM engine's own virtualenv (make vllm-venv; make test runs them
# there); in an environment without vLLM they are not collected.
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm"]

VOCAB_SIZE = 100
EOS_ID = 2
MAX_CONTEXT = 96
# Multi-character tokens let stop strings and special tokens span token boundaries.
_MULTI = ["ab", "cd", "ST", "OP", "STOP", "the", "end", "##", "<|x|>"]


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)  # a training job shares this machine: no oversubscription


def _vocab() -> dict[str, int]:
    tokens = ["<pad>", "<bos>", "<eos>", *_MULTI, *string.ascii_letters, *string.digits, " "]
    tokens += [c for c in string.punctuation if c not in tokens]
    tokens = tokens[:VOCAB_SIZE]  # every model id decodes to something
    assert len(tokens) == VOCAB_SIZE
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(_vocab(), unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # one token per char
    tok.decoder = decoders.Fuse()  # join tokens without spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|x|>"]})
    fast.save_pretrained(folder)


def build_model(folder: Path, hidden: int, layers: int, seed: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_CONTEXT,
        bos_token_id=1,
        eos_token_id=EOS_ID,
        pad_token_id=0,
        initializer_range=0.2,  # peaky logits: varied, tie-free greedy text
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    build_tokenizer(folder)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    slm, llm = root / "slm", root / "llm"
    build_model(slm, hidden=32, layers=1, seed=1)
    build_model(llm, hidden=64, layers=2, seed=2)
    return slm, llm


@pytest.fixture(scope="session")
def engines(model_dirs: tuple[Path, Path]):
    """(slm, llm, tokenizer) loaded through the engine's folder loader.

    Shared by all tests: every test must leave num_caches() == 0.
    """
    from engines.hf import HFEngine, HFEngineConfig, load_tokenizer

    slm = HFEngine(HFEngineConfig(str(model_dirs[0])))
    llm = HFEngine(HFEngineConfig(str(model_dirs[1])))
    return slm, llm, load_tokenizer(str(model_dirs[0]))
