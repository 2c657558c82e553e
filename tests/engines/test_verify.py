"""One LLM pass settles every routed position of a drafted window: the LLM is fed the
drafts after the cut and samples at each routed position (``SeqWork.sample_offsets``);
a position's token counts while every routed one before it agreed with its draft. It
changes how many LLM passes and steps an answer takes, never which token a position gets.
"""

from __future__ import annotations

import dataclasses

import pytest

from engines.async_engine import generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import SamplingParams, SeqWork
from tests.engines.helpers import ModRouter, assert_offsets_sample_as_steps
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, trace


@pytest.mark.parametrize("sampling", [{}, {**SAMPLED, "logprobs": 2}], ids=["greedy", "seeded"])
def test_a_token_sampled_at_an_offset_is_the_token_a_step_there_samples(engines, sampling):
    _, llm, _ = engines
    sp = SamplingParams(max_tokens=4, **sampling)
    ids = prompts(8)[5]  # 8 tokens
    assert_offsets_sample_as_steps(llm, ids, (0, 3, 6), sp)
    assert llm.cache_len(900) == len(ids)  # the sample rows add nothing to the cache
    llm.free(900)
    assert_freed(engines)


def test_sample_offsets_are_checked(engines) -> None:
    _, llm, _ = engines
    sp = SamplingParams(max_tokens=4)
    with pytest.raises(ValueError, match="sample_offsets"):
        llm.step([SeqWork(902, 0, [3, 4], sp, seed=0, sample_offsets=(2,))])
    with pytest.raises(ValueError, match="grammar"):
        llm.step([SeqWork(902, 0, [3, 4], sp, seed=0, sample_offsets=(0,), grammar=object())])
    assert llm.cache_len(902) == 0


@pytest.mark.parametrize("sampling", [{}, SAMPLED], ids=["greedy", "seeded"])
@pytest.mark.parametrize("twin", [True, False], ids=["twin-slm", "own-slm"])
def test_verifying_routed_positions_never_changes_tokens(
    engines, model_dirs, monkeypatch, sampling: dict, twin: bool
) -> None:
    """Verify on vs off (an LLM that does not verify gets one routed position a pass),
    16 requests at once and 4 alone: the same tokens, sources and scores. A twin SLM
    (the LLM's own weights) agrees everywhere, so a pass settles a whole window: fewer
    LLM passes and steps, and nothing the LLM was fed is thrown away."""
    from engines.hf import HFEngine, HFEngineConfig

    slm, llm, tok = engines
    draft = HFEngine(HFEngineConfig(str(model_dirs[1]))) if twin else slm
    reqs = [req(f"r{i}", p, 24, seed=100 + i, **sampling) for i, p in enumerate(prompts(16))]

    def run(batch: list) -> tuple[list, object]:
        cfg = SchedulerConfig(window=4, max_batch=16, adaptive_max_batch=0)
        s = Scheduler(draft, llm, ModRouter(), tok, cfg)
        return generate_batch(s, batch), s.totals

    on, t_on = run(reqs)
    alone = [run([r])[0][0] for r in reqs[:4]]
    monkeypatch.setattr(llm, "info", dataclasses.replace(llm.info, verifies=False))
    off, t_off = run(reqs)
    assert [trace(o) for o in on] == [trace(o) for o in off]
    assert [trace(o) for o in alone] == [trace(o) for o in on[:4]]  # c=1 vs c=16
    assert {src for o in on for src in o.sources} == {"slm", "llm"}
    assert t_on.llm_passes <= t_off.llm_passes and t_on.steps <= t_off.steps
    discarded = sum(o.stats.llm_discarded_tokens for o in on)
    if twin:
        assert t_on.llm_passes < t_off.llm_passes and t_on.steps < t_off.steps
        assert discarded == 0
    else:  # the demo SLM disagrees often: drafts fed past a disagreement are cropped
        assert discarded > 0
    assert sum(o.stats.llm_discarded_tokens for o in off) == 0
    assert draft.num_caches() == 0
    assert_freed(engines)
