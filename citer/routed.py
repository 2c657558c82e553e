"""Collaborative decoding of task items through the real scheduler.

    PairConfig --build_pair--> (SLM engine, LLM engine, tokenizer)
    + router (router_models.registry) --> Scheduler --generate_batch--> Generations

Used by ``citer eval --slm --llm --policy`` and ``citer bench``; the gateway
builds the same objects in its lifespan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citer.evaluate import MAX_NEW_TOKENS, Generation
from engines.async_engine import generate_batch
from engines.hf import HFEngine, HFEngineConfig, load_tokenizer
from engines.remote import RemoteConfig, RemoteEngine
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import (
    Engine,
    Request,
    RequestOutput,
    RoutingParams,
    SamplingParams,
    StepStats,
)
from router_models.registry import build_router
from router_models.vocab import tokenizer_hash, weights_fingerprint
from tasks.types import Item

DEFAULT_CARD = "models/demo/router"  # the shipped CITER router card


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

    def __post_init__(self) -> None:
        if self.engine not in ("hf", "vllm"):
            raise ValueError(f"engine={self.engine!r}: must be 'hf' or 'vllm'")
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


def build_pair(cfg: PairConfig) -> Pair:
    from citer.modelcheck import check_model_folder

    check_model_folder(cfg.slm)
    slm_weights = weights_fingerprint(cfg.slm)
    if cfg.remote is not None:  # the SLM here; the LLM shares its tokenizer by contract
        slm = HFEngine(HFEngineConfig(cfg.slm, cfg.device, cfg.dtype))
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
    slm = HFEngine(HFEngineConfig(cfg.slm, cfg.device, cfg.dtype))
    llm = HFEngine(HFEngineConfig(cfg.llm, cfg.device, cfg.dtype))
    return Pair(slm, llm, load_tokenizer(cfg.slm), slm_hash, slm_weights)


def make_router(
    pair: Pair,
    policy: str,
    threshold: float | None = None,
    target_share: float | None = None,
    card: str | None = None,
) -> tuple[Any, float]:
    kw: dict[str, Any] = {}
    if policy == "citer":
        kw = {"card": card or DEFAULT_CARD, "hidden_size": pair.slm.info.hidden_size,
              "tokenizer_hash": pair.tokenizer_hash, "slm_weights": pair.slm_weights}  # fmt: skip
    elif card is not None:
        raise ValueError(f"--router-card is only used with --policy citer, not {policy}")
    return build_router(
        policy,
        threshold=threshold,
        target_share=target_share,
        available_features=pair.slm.info.features,
        **kw,
    )


def prompt_ids(tokenizer: Any, item: Item) -> list[int]:
    out = tokenizer.apply_chat_template(item.messages, add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


class ScheduledDecoder:
    """Greedy decoding of items through one Scheduler; keeps its stats for reports."""

    def __init__(self, pair: Pair, router: Any, threshold: float, window: int, concurrency: int):
        self.pair, self.threshold = pair, threshold
        self.sched = Scheduler(
            pair.slm, pair.llm, router, pair.tokenizer,
            SchedulerConfig(window=window, max_batch=concurrency, seed=0),
        )  # fmt: skip
        self.outputs: list[RequestOutput] = []

    def __call__(self, items: Sequence[Item]) -> list[Generation]:
        rp = RoutingParams(threshold=self.threshold)
        # Seed i for item i: greedy tokens ignore it, but per-position random routing
        # must differ between items, or every item gets the same LLM positions.
        reqs = [
            Request(
                f"{it.id or i}",
                prompt_ids(self.pair.tokenizer, it),
                SamplingParams(max_tokens=MAX_NEW_TOKENS, temperature=0.0, seed=i),
                rp,
            )
            for i, it in enumerate(items)
        ]
        self.outputs = generate_batch(self.sched, reqs)
        eos = self.sched.eos_ids
        gens = []
        for o in self.outputs:
            n = len(o.token_ids) - (1 if o.token_ids and o.token_ids[-1] in eos else 0)
            gens.append(Generation(o.text, o.token_ids[:n], o.sources[:n], o.scores[:n]))
        return gens

    def stats(self) -> dict[str, object]:
        """LLM token share and where the time went, over the last call."""
        slm = sum(o.stats.slm_tokens for o in self.outputs)
        llm = sum(o.stats.llm_tokens for o in self.outputs)
        t: StepStats = self.sched.totals
        total = t.slm_s + t.router_s + t.llm_s + t.sched_s
        share = {k: round(v / total, 4) if total else 0.0 for k, v in
                 (("slm", t.slm_s), ("router", t.router_s), ("llm", t.llm_s),
                  ("scheduler", t.sched_s))}  # fmt: skip
        return {
            "llm_token_share": round(llm / max(1, slm + llm), 4),
            "slm_tokens": slm,
            "llm_tokens": llm,
            "llm_calls": t.llm_calls,
            "steps": getattr(t, "steps", 0),
            "time_share": share,
            "time_s": {
                k: round(v, 3)
                for k, v in (
                    ("slm", t.slm_s),
                    ("router", t.router_s),
                    ("llm", t.llm_s),
                    ("scheduler", t.sched_s),
                )
            },  # fmt: skip
        }


def write_dump(path: str, items: Sequence[Item], gens: Sequence[Generation],
               correct: Sequence[bool]) -> None:  # fmt: skip
    """One JSONL line per item: what was generated and who wrote each token."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for it, g, ok in zip(items, gens, correct, strict=True):
            row = {"id": it.id, "family": it.family, "answer": it.answer, "correct": ok,
                   "text": g.text, "token_ids": g.token_ids, "sources": g.sources,
                   "scores": [round(s, 4) for s in g.scores]}  # fmt: skip
            f.write(json.dumps(row) + "\n")
