"""Compiled decoder stacks (engines/compiled.py): on every kind of forward the engine
makes, the same tokens, log-probs and features as the eager engine, and after load
nothing is compiled (a new batch shape must not stall serving for a compile)."""

from __future__ import annotations

import pytest
import torch

from engines.hf import HFEngine, HFEngineConfig, ModelLoadError
from engines.pair import PairConfig, build_pair
from engines.types import SamplingParams, SeqWork
from gateway.settings import GatewaySettings
from tests.engines.helpers import assert_same_outputs

GREEDY = SamplingParams(max_tokens=64, logprobs=3)
SEEDED = SamplingParams(max_tokens=64, temperature=1.0, seed=3)
FEATS = ("token", "logits", "hidden:final")


@pytest.fixture(scope="module")
def compiled_llm(model_dirs) -> HFEngine:
    return HFEngine(HFEngineConfig(str(model_dirs[1]), compile=True))


def _workload(eng: HFEngine) -> tuple[list, list[str]]:
    """Uneven prompts, an uneven step over scattered slots with drafts and probes, then
    greedy and seeded decoding at batch 4 and 1 with run-ahead; returns the outputs and
    the kind of each forward (plain / rows / direct, with its batch shape)."""
    kinds: list[str] = []
    inner = eng._run

    def run(new, b):  # noqa: ANN001, ANN202
        kind = "plain" if b.flat is None else "direct" if b.direct is not None else "rows"
        kinds.append(f"{kind} {tuple(b.write_at.shape)}")
        return inner(new, b)

    eng._run = run  # type: ignore[method-assign]
    try:
        outs = []
        prompts = {1: [5, 9, 3, 7], 2: [4], 3: [8, 6, 5, 3, 9, 11, 2], 4: [7, 7], 5: [3, 8, 1]}
        outs.append(eng.step([SeqWork(s, 0, p, GREEDY, 0) for s, p in prompts.items()], FEATS))
        eng.free(4)  # slots by length: 3, 1, 5, (4 ->) 2; seqs 1 and 2 are no run
        outs.append(eng.step([
            SeqWork(1, 4, [9, 9, 9], GREEDY, 0, 3, probe_offsets=(0, 2)),
            SeqWork(2, 1, [4, 4, 4, 4, 4], GREEDY, 0, 1, sample_offsets=(1, 3)),
        ], FEATS))  # fmt: skip
        seqs = {1: GREEDY, 2: SEEDED, 3: GREEDY, 5: SEEDED}
        last = {s: eng.cached_tokens(s)[-1] for s in seqs}
        for batch in (list(seqs), [2]):
            for _ in range(6):
                out = eng.step([SeqWork(s, eng.cache_len(s), [last[s]], seqs[s], 11, 3)
                                for s in batch], FEATS)  # fmt: skip
                outs.append(out)
                last.update({s: t[-1] for s, t in zip(batch, out.tokens, strict=True)})
        for s in seqs:
            eng.free(s)
        assert eng.num_caches() == 0
        return outs, kinds
    finally:
        eng._run = inner  # type: ignore[method-assign]


def test_a_compiled_engine_gives_what_the_eager_engine_gives(model_dirs, compiled_llm) -> None:
    eager = HFEngine(HFEngineConfig(str(model_dirs[1])))
    assert eager.compiled is None and compiled_llm.compiled is not None
    got, kinds = _workload(compiled_llm)
    want, _ = _workload(eager)
    assert {k.split()[0] for k in kinds} == {"plain", "rows", "direct"}
    assert_same_outputs(got, want, atol=1e-4)
    for a, b in zip(got, want, strict=True):
        assert (a.logprobs is None) == (b.logprobs is None)
        if a.logprobs is not None:
            for x, y in zip(a.logprobs, b.logprobs, strict=True):
                assert [t.top[0][0] for t in x] == [t.top[0][0] for t in y]


def test_after_load_no_forward_compiles_again(compiled_llm) -> None:
    body = compiled_llm.compiled
    assert body is not None and body.frozen
    body.frozen = False  # let a recompile fail loudly instead of running eagerly
    try:
        with torch.compiler.set_stance("fail_on_recompile"):
            _, kinds = _workload(compiled_llm)
    finally:
        body.frozen = True
    assert len(set(kinds)) > 4  # many batch shapes, every one served by the load's graphs


def test_compile_is_refused_where_the_ragged_path_is_off(model_dirs) -> None:
    with pytest.raises(ModelLoadError, match="ragged attention path"):
        HFEngine(HFEngineConfig(str(model_dirs[0]), ragged=False, compile=True))


def test_a_pair_compiles_the_models_it_is_told_to(model_dirs) -> None:
    pair = build_pair(PairConfig(str(model_dirs[0]), str(model_dirs[1]), slm_compile=True))
    assert pair.slm.compiled is not None and pair.llm.compiled is None  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="hf engine"):
        PairConfig(str(model_dirs[0]), str(model_dirs[1]), engine="vllm", llm_compile=True)


def test_gateway_settings_refuse_compile_where_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="CITER_SLM_COMPILE"):
        GatewaySettings(slm_compile=True, engine="vllm")
    with pytest.raises(ValueError, match="CITER_LLM_COMPILE"):
        GatewaySettings(llm_compile=True, llm_url="http://cloud:8000/v1")
    ok = GatewaySettings(slm_compile=True, llm_compile=True)
    assert (ok.slm_compile, ok.llm_compile) == (True, True)
