"""Ragged forwards (engines/ragged.py): an uneven batch feeds only its real tokens and
gives what the padded forward gives; a model the ragged path cannot serve pads."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface, AutoModelForCausalLM

from engines import ragged
from engines.hf import HFEngine, HFEngineConfig
from engines.types import SamplingParams, SeqWork
from tests.engines.helpers import assert_same_outputs

SP = SamplingParams(max_tokens=64)
SEEDED = SamplingParams(max_tokens=64, temperature=1.0, seed=3)
FEATS = ("token", "logits", "hidden:final")


def _run(eng: HFEngine) -> list:
    """Prefill five prompts of uneven lengths, then one uneven step with probes,
    sampled offsets, run-ahead drafts and features; returns everything it gave."""
    prompts = {1: [5, 9, 3, 7], 2: [4], 3: [8, 6, 5, 3, 9, 11, 2], 4: [7, 7], 5: [3, 8, 1]}
    first = eng.step([SeqWork(s, 0, p, SP, 0, 1) for s, p in prompts.items()], FEATS)
    eng.free(4)  # seq 5 moves into seq 4's slot: the next batch is no run (direct or copied)
    work = [
        SeqWork(1, 4, [9, 9, 9], SP, 0, 3, probe_offsets=(0, 2)),
        SeqWork(2, 1, [6], SEEDED, 7, 2),
        SeqWork(3, 7, [4, 4, 4, 4, 4], SP, 0, 1, sample_offsets=(1, 3)),
        SeqWork(6, 0, [2, 5], SP, 0, 2),  # a new sequence joins an uneven batch
    ]
    out = eng.step(work, FEATS)
    for s in (1, 2, 3, 5, 6):
        eng.free(s)
    assert eng.num_caches() == 0
    return [first, out]


def test_ragged_and_padded_forwards_give_the_same_tokens_and_features(model_dirs) -> None:
    path = str(model_dirs[1])
    rag, pad = HFEngine(HFEngineConfig(path)), HFEngine(HFEngineConfig(path, ragged=False))
    assert rag.ragged and not pad.ragged
    calls: list[bool] = []  # per forward that ran ragged: whether it ran direct
    inner = rag._run
    rag._run = lambda new, b: (
        (b.flat is not None and calls.append(b.direct is not None)) or inner(new, b)
    )  # type: ignore[method-assign]
    assert_same_outputs(_run(rag), _run(pad), atol=1e-5)
    assert False in calls, "no forward took the ragged path over a run of slots"
    assert True in calls, "no forward took the direct path"


def test_a_model_without_sdpa_keeps_padding(model_dirs) -> None:
    model = AutoModelForCausalLM.from_pretrained(model_dirs[1], attn_implementation="eager")
    assert not ragged.enable(model)
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("fault", ["rows", "direct"])
def test_a_ragged_path_that_disagrees_at_load_falls_back_to_padding(model_dirs, fault) -> None:
    def wrong(module, query, key, value, mask, **kw):  # a fault: ragged outputs are zero
        out, w = ragged.attention(module, query, key, value, mask, **kw)
        b = ragged.current()
        hit = b is not None and b.flat is not None and (b.direct is not None) == (fault == "direct")
        return (torch.zeros_like(out) if hit else out), w

    AttentionInterface.register(ragged.RAGGED, wrong)
    try:
        eng = HFEngine(HFEngineConfig(str(model_dirs[1])))
    finally:
        AttentionInterface.register(ragged.RAGGED, ragged.attention)
    assert not eng.ragged and eng.model.config._attn_implementation == "sdpa"
    ref = HFEngine(HFEngineConfig(str(model_dirs[1]), ragged=False))
    assert [o.tokens for o in _run(eng)] == [o.tokens for o in _run(ref)]


@pytest.mark.parametrize("sizes", [[3, 1], [1, 4, 2], [2, 2, 5, 1]])
def test_flat_index_lists_each_real_token_once(sizes) -> None:
    rows, offs = ragged.flat_index(list(range(len(sizes)))[::-1], sizes, "cpu")
    want = [(len(sizes) - 1 - i, t) for i, n in enumerate(sizes) for t in range(n)]
    assert list(zip(rows.tolist(), offs.tolist(), strict=True)) == want
