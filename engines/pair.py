"""An SLM/LLM engine pair that shares one tokenizer, built from two model folders.

    PairConfig --build_pair--> Pair(slm, llm, tokenizer, tokenizer hash, SLM weights)

Backends: two HF engines (default), two vLLM engines in this process, or an HF SLM
with the LLM on a remote server (``PairConfig.remote``). The tokenizer hash and the
SLM's weight fingerprint are what router cards are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.hf import HFEngine, HFEngineConfig, load_tokenizer
from engines.remote import RemoteConfig, RemoteEngine
from engines.types import Engine
from router_models.vocab import tokenizer_hash, weights_fingerprint


@dataclass(frozen=True)
class PairConfig:
    slm: str  # SLM model folder
    llm: str  # LLM model folder (same tokenizer)
    device: str = "cpu"
    dtype: str = "float32"
    remote: RemoteConfig | None = None  # set: the LLM runs on that server; `llm` is unused
    engine: str = "hf"  # backend of both models: "hf" or "vllm" (needs .venv-vllm)
    vllm_gpu_memory: tuple[float, float] = (0.2, 0.6)  # vllm on cuda: device share SLM, LLM
    vllm_kv_cache_gib: float = 0.5  # vllm on cpu: KV-cache space of each engine (GiB)
    ragged: bool = True  # hf: uneven batches feed only their real tokens (engines.ragged)
    slm_quant: str = "none"  # hf: "int8" weight-only linears (engines.quant)
    llm_quant: str = "none"
    slm_compile: bool = False  # hf: torch.compile the decoder stack at load (engines.compiled)
    llm_compile: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ("hf", "vllm"):
            raise ValueError(f"engine={self.engine!r}: must be 'hf' or 'vllm'")
        if self.engine == "vllm" and {self.slm_quant, self.llm_quant} != {"none"}:
            raise ValueError("quant applies to the hf engine; vllm loads quantised checkpoints")
        if self.engine != "hf" and (self.slm_compile or self.llm_compile):
            raise ValueError("compile applies to the hf engine; vllm compiles on its own")
        if self.remote and self.llm_compile:
            raise ValueError("llm compile: a remote LLM's server runs its own engine")
        if self.remote and self.llm_quant != "none":
            raise ValueError("llm quant: a remote LLM's server decides its own weights")
        if self.remote and self.engine != "hf":
            raise ValueError("a remote LLM pairs with an SLM on the hf engine, not vllm")
        local = (("slm", self.slm),) if self.remote else (("slm", self.slm), ("llm", self.llm))
        for field, path in local:
            if not Path(path).is_dir():
                raise ValueError(f"--{field} {path}: model folder does not exist")


@dataclass
class Pair:
    slm: Engine  # HFEngine or VLLMEngine
    llm: Engine  # HFEngine, VLLMEngine, or RemoteEngine for an edge + cloud pair
    tokenizer: Any
    tokenizer_hash: str
    slm_weights: str  # weights_fingerprint() of the SLM folder, checked against router cards

    def reserve_kv(self, slots: int, positions: int) -> None:
        """Allocate both local caches' room for ``slots`` sequences of ``positions`` tokens
        now (engines whose caches grow on demand: hf; vLLM reserves its own at start)."""
        for engine in (self.slm, self.llm):
            reserve = getattr(engine, "reserve_kv", None)
            if reserve is not None:
                reserve(slots, positions)

    def release_kv(self) -> None:
        """Give both local caches' memory back while no sequence is live."""
        for engine in (self.slm, self.llm):
            release = getattr(engine, "release_kv", None)
            if release is not None:
                release()


def build_pair(cfg: PairConfig) -> Pair:
    from engines.modelcheck import check_model_folder

    check_model_folder(cfg.slm)
    slm_weights = weights_fingerprint(cfg.slm)
    if cfg.remote is not None:  # the SLM here; the LLM shares its tokenizer by contract
        slm = _hf(cfg, cfg.slm, cfg.slm_quant, cfg.slm_compile)
        i = slm.info
        llm = RemoteEngine(cfg.remote, i.vocab_size, i.eos_token_ids, i.max_context)
        return Pair(slm, llm, load_tokenizer(cfg.slm), tokenizer_hash(cfg.slm), slm_weights)
    check_model_folder(cfg.llm)
    slm_hash, llm_hash = tokenizer_hash(cfg.slm), tokenizer_hash(cfg.llm)
    if slm_hash != llm_hash:
        raise ValueError(
            f"{cfg.slm} and {cfg.llm} have different tokenizers: token-level routing needs "
            "a pair that shares one tokenizer"
        )
    if cfg.engine == "vllm":
        from engines.vllm_engine import VLLMEngineConfig, build_vllm_pair

        slm, llm = build_vllm_pair(*(
            VLLMEngineConfig(path, cfg.device, cfg.dtype, gpu_memory_fraction=share,
                             kv_cache_gib=cfg.vllm_kv_cache_gib)
            for path, share in zip((cfg.slm, cfg.llm), cfg.vllm_gpu_memory, strict=True)
        ))  # fmt: skip
        return Pair(slm, llm, load_tokenizer(cfg.slm), slm_hash, slm_weights)
    slm = _hf(cfg, cfg.slm, cfg.slm_quant, cfg.slm_compile)
    llm = _hf(cfg, cfg.llm, cfg.llm_quant, cfg.llm_compile)
    return Pair(slm, llm, load_tokenizer(cfg.slm), slm_hash, slm_weights)


def _hf(cfg: PairConfig, path: str, quant: str, compile_: bool) -> HFEngine:
    return HFEngine(HFEngineConfig(path, cfg.device, cfg.dtype, ragged=cfg.ragged, quant=quant,
                                   compile=compile_))  # fmt: skip
