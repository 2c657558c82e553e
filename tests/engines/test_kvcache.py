"""The slot pool (engines/kvcache.py): views for neighbouring slots, copies otherwise,
the same logits either way, and no garbage from a slot's former owner."""

from __future__ import annotations

import torch

from engines.kvcache import KVPool
from engines.types import SamplingParams, SeqWork

SP = SamplingParams(max_tokens=64)


def test_slots_are_reused_lowest_first_and_memory_is_released_when_idle() -> None:
    pool = KVPool((1, 2, 1, 4), torch.float32, "cpu")
    for sid in (10, 11, 12):
        pool.add(sid)
    assert [pool.slot[s] for s in (10, 11, 12)] == [0, 1, 2]
    pool.batch([10, 11, 12], [1, 1, 1])
    pool.free(11)
    pool.add(13)
    assert pool.slot[13] == 1  # the hole is refilled, so the batch stays one view
    b = pool.batch([10, 13, 12], [1, 1, 1])
    assert b.rows is None  # slots 0..2 in order: a view of the pool, nothing copied
    b = pool.batch([10, 12], [1, 1])
    assert b.rows is not None and b.rows.tolist() == [0, 2]  # a gap: one copy
    for sid in (10, 12, 13):
        pool.free(sid)
    assert pool.pool is None and len(pool) == 0


def test_view_and_copy_batches_give_the_logits_of_one_sequence_alone(engines) -> None:
    _, llm, _ = engines
    prompts = {1: [5, 9, 3, 7], 2: [4, 4], 3: [8, 6, 5, 3, 9, 11]}
    alone = {}
    for sid, p in prompts.items():
        out = llm.step([SeqWork(100 + sid, 0, p, SP, 0, 3)])
        alone[sid] = out.tokens[0]
        llm.free(100 + sid)
    llm.step([SeqWork(sid, 0, p[:1], SP, 0, 1) for sid, p in prompts.items()])  # slots 0..2
    view = llm.step([SeqWork(sid, 1, p[1:], SP, 0, 3) for sid, p in prompts.items()])
    assert view.tokens == list(alone.values())
    llm.crop(2, 1)
    copy = llm.step([SeqWork(2, 1, prompts[2][1:], SP, 0, 3)])  # slot 1 alone: a copy
    assert copy.tokens == [alone[2]]
    for sid in prompts:
        llm.free(sid)


def test_a_poisoned_former_owner_leaves_nothing_in_its_slot(engines) -> None:
    _, llm, _ = engines
    ref = llm.step([SeqWork(1, 0, [5, 9, 3], SP, 0, 4)]).tokens
    llm.free(1)
    llm.step([SeqWork(1, 0, [7], SP, 0, 1), SeqWork(2, 0, [7, 7, 7, 7, 7, 7], SP, 0, 1)])
    with torch.inference_mode():  # a fault: its K/V went non-finite
        llm.kv.pool[:, :, llm.kv.slot[2]] = float("nan")
    llm.free(2)
    # seq 3 takes slot 1 beside seq 1's longer row, so its row reads past its own end
    again = llm.step([SeqWork(1, 1, [6] * 8, SP, 0, 1), SeqWork(3, 0, [5, 9, 3], SP, 0, 4)])
    assert again.tokens[1] == ref[0]
    llm.free(1)
    llm.free(3)
