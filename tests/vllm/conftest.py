"""The demo pair loaded twice, by the HF engine (the reference) and the vLLM engine.

Both pairs are built once per session; every test must leave no sequence cache behind
(``assert_freed``) so the next one starts clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


@dataclass
class Pair:
    slm: Any
    llm: Any
    tokenizer: Any


@pytest.fixture(scope="session")
def demo() -> tuple[str, str]:
    slm, llm = DEMO / "slm", DEMO / "llm"
    for p in (slm, llm):
        assert (p / "config.json").is_file(), f"{p}: the demo pair is missing (make demo-models)"
    return str(slm), str(llm)


@pytest.fixture(scope="session")
def hf(demo: tuple[str, str]) -> Pair:
    from engines.hf import HFEngine, HFEngineConfig, load_tokenizer

    slm, llm = demo
    return Pair(HFEngine(HFEngineConfig(slm)), HFEngine(HFEngineConfig(llm)), load_tokenizer(slm))


@pytest.fixture(scope="session")
def vllm(demo: tuple[str, str], hf: Pair) -> Pair:
    from engines.vllm_engine import VLLMEngineConfig, build_vllm_pair

    slm, llm = demo  # float32, like the HF reference; small KV caches (GiB)
    s, m = build_vllm_pair(VLLMEngineConfig(slm, kv_cache_gib=0.1), VLLMEngineConfig(llm))
    return Pair(s, m, hf.tokenizer)


@pytest.fixture(scope="session")
def prompts(hf: Pair) -> list[list[int]]:
    """Chat prompts of 8 test items, two of each family."""
    from tasks.chat import chat_ids
    from tasks.splits import load_split

    items = load_split("test", 40)
    picked = []
    for fam in sorted({it.family for it in items}):
        picked += [it for it in items if it.family == fam][:2]
    return [chat_ids(hf.tokenizer, it.messages) for it in picked]
