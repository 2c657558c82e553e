"""Loading a Hugging Face model folder for the hf engine: its settings, the model with
its attention kind checked, the tokenizer, and one-line errors that name the path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from engines.quant import QUANTS, quantize

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(ValueError):
    """A model folder that cannot be loaded; the message is one line naming the path."""


@dataclass(frozen=True)
class HFEngineConfig:
    path: str  # local HF model folder (config.json + weights)
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    dtype: str = "float32"  # one of DTYPES; float32 is the exact reference
    max_batch_tokens: int = 8192  # positions per forward (B x T; direct: real); more is split
    pad_free_tokens: int = 256  # batches this small are never split to save padding
    ragged: bool = True  # uneven batches feed only their real tokens (engines.ragged)
    quant: str = "none"  # "int8": weight-only int8 linears (engines.quant; cpu, bfloat16)
    compile: bool = False  # torch.compile the decoder stack at load (engines.compiled)

    def __post_init__(self) -> None:
        if self.device != "cpu" and self.device != "cuda" and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}: must be 'cpu', 'cuda' or 'cuda:N'")
        if self.device != "cpu" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r}: no CUDA device is available")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}: must be one of {', '.join(DTYPES)}")
        if self.quant not in QUANTS:
            raise ValueError(f"quant={self.quant!r}: must be one of {', '.join(QUANTS)}")
        if self.quant == "int8" and (self.device != "cpu" or self.dtype != "bfloat16"):
            raise ValueError(
                f"quant=int8 runs on the cpu in bfloat16 (got device={self.device!r}, "
                f"dtype={self.dtype!r}); on a GPU serve a quantised checkpoint with vllm"
            )
        if self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens={self.max_batch_tokens}: must be >= 1")
        if self.pad_free_tokens < 0:
            raise ValueError(f"pad_free_tokens={self.pad_free_tokens}: must be >= 0")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_model(cfg: HFEngineConfig) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    p = Path(cfg.path)
    if not p.is_dir():
        raise ModelLoadError(f"{p}: model folder does not exist")
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"{p}: no config.json (not a Hugging Face model folder)")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype=DTYPES[cfg.dtype])
    except Exception as e:  # transformers/safetensors raise many unrelated types
        raise ModelLoadError(f"{p}: cannot load model ({_first_line(e)})") from e
    text = model.config.get_text_config(decoder=True)
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    sliding = getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True)
    if kinds != {"full_attention"} or sliding:
        raise ModelLoadError(
            f"{p}: sliding-window/hybrid attention is not supported by the hf engine"
        )
    model = model.to(cfg.device).eval()
    if cfg.quant != "none" and quantize(model, cfg.quant) == 0:
        raise ModelLoadError(f"{p}: no linear layer the {cfg.quant} kernel takes")
    return model


def load_tokenizer(path: str) -> object:
    """The HF tokenizer of a model folder (the SLM and LLM share it)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load tokenizer ({_first_line(e)})") from e
