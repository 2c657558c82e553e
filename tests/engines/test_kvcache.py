"""The slot pool (engines/kvcache.py): dense slots, views for a run or a narrow span
of slots, direct forwards (ragged engines) or a copy otherwise, the same tokens every
way, and no garbage from a slot's former owner."""

from __future__ import annotations

import pytest
import torch

from engines.chunking import token_chunks
from engines.kvcache import KVPool
from engines.types import SamplingParams, SeqWork

SP = SamplingParams(max_tokens=64)


def test_slots_stay_dense_and_memory_is_kept_when_idle_until_released() -> None:
    pool = KVPool((1, 2, 1, 4), torch.float32, "cpu")
    with torch.inference_mode():
        ids = [10, 11, 12, 13, 14, 15]
        b = pool.batch(ids, [2, 1, 1, 1, 1, 1])
        assert [pool.slot[s] for s in ids] == [0, 1, 2, 3, 4, 5]
        assert b.copied is None and b.index == [0, 1, 2, 3, 4, 5]  # a run of slots: a view
        pool.commit(ids, [[1, 2], [3], [4], [5], [6], [7]], b)
        kept = pool.pool[:, :, 5, :, :1].clone()
        pool.free(11)  # the last sequence moves into the hole, with its cache
        assert pool.owner == [10, 15, 12, 13, 14] and pool.slot[15] == 1
        assert torch.equal(pool.pool[:, :, 1, :, :1], kept)
        b = pool.batch([10, 12], [1, 1])  # slots 0 and 2: a decode over a span of 3 <= 2 x 2
        assert b.copied is None and b.index == [0, 2] and b.write_at.shape[0] == 3
        b = pool.batch([10, 14], [1, 1])  # slots 0 and 4: a span of 5 rows: copied
        assert b.copied is not None and b.copied.tolist() == [0, 4] and b.index == [0, 1]
        assert not pool.viewable([10, 14], [1, 1]) and pool.viewable([10, 12], [1, 1])
        assert not pool.viewable([10, 12], [2, 1])  # not a decode: the span is no view
        assert pool.viewable([14, 99], [3, 1])  # slot 4, then a new sequence in slot 5
        b = pool.batch([14, 10], [1, 3], ragged=True)  # ragged: direct, no copy
        assert b.copied is None and b.direct is not None and b.kv is pool.pool
        assert [(d.slot, d.start, d.n, d.end) for d in b.direct] == [(4, 0, 1, 2), (0, 1, 3, 5)]
        assert b.direct[0].mask is None  # one new token sees every cached key
        assert b.direct[1].mask is not None and b.direct[1].mask[0, 0].tolist() == [
            [True, True, True, False, False],  # causal within the 3 new tokens (positions 2-4)
            [True, True, True, True, False],
            [True, True, True, True, True],
        ]
    pool.release()  # sequences are live: kept
    assert pool.pool is not None
    for sid in (10, 12, 13, 14, 15):
        pool.free(sid)
    kept = pool.pool
    assert kept is not None and len(pool) == 0  # idle: the memory stays for the next burst
    with torch.inference_mode():
        pool.batch([20], [3])  # a new sequence takes slot 0 of the same memory
        assert pool.pool is kept and pool.slot[20] == 0
        assert not pool.pool[:, :, 0, :, 3:].any()  # nothing left by slot 0's former owner
    pool.free(20)
    pool.release()
    assert pool.pool is None and pool.dirty == []


def test_reserve_allocates_once_and_forwards_within_it_allocate_nothing() -> None:
    pool = KVPool((2, 2, 1, 4), torch.float32, "cpu")
    pool.reserve(4, 100)
    grown = pool.pool
    assert grown is not None and grown.shape == (2, 2, 4, 1, 100, 4) and not grown.any()
    with torch.inference_mode():
        for sid in range(4):
            pool.commit([sid], [[1] * 90], pool.batch([sid], [90]))
        pool.commit([0, 1, 2, 3], [[1]] * 4, pool.batch([0, 1, 2, 3], [1] * 4))
    assert pool.pool is grown  # 4 x 91 positions fit: nothing was reallocated
    pool.reserve(2, 50)  # smaller than what is there: nothing changes
    assert pool.pool is grown
    with torch.inference_mode():
        pool.batch([4], [1])  # a fifth sequence: the slots double
    assert pool.pool is not grown and pool.pool.shape[2] == 8 and pool.pool.shape[4] == 100


@pytest.mark.parametrize("ragged", [True, False], ids=["ragged", "padded"])
@pytest.mark.parametrize("subset", [(1, 2, 3, 4), (1, 3), (1, 5)], ids=["run", "span", "copy"])
def test_every_batch_layout_gives_the_tokens_of_one_sequence_alone(
    engines, model_dirs, subset, ragged
) -> None:
    from engines.hf import HFEngine, HFEngineConfig

    llm = engines[1] if ragged else HFEngine(HFEngineConfig(str(model_dirs[1]), ragged=False))
    prompts = {1: [5, 9, 3, 7], 2: [4, 4], 3: [8, 6, 5, 3, 9, 11], 4: [7, 7, 2], 5: [3, 8]}
    alone = {}
    for sid, p in prompts.items():
        alone[sid] = llm.step([SeqWork(100 + sid, 0, p, SP, 0, 3)]).tokens[0]
        llm.free(100 + sid)
    llm.step([SeqWork(sid, 0, p[:1], SP, 0, 1) for sid, p in prompts.items()])  # slots 0..4
    layout = llm.kv.batch(list(subset), [1] * len(subset))
    assert (layout.copied is not None) == (subset == (1, 5))
    uneven = llm.kv.batch(list(subset), [2, *[1] * (len(subset) - 1)], ragged=ragged)
    assert (uneven.direct is not None) == (ragged and subset != (1, 2, 3, 4))  # no run: direct
    assert (uneven.copied is not None) == (not ragged and subset != (1, 2, 3, 4))
    out = llm.step([SeqWork(sid, 1, prompts[sid][1:], SP, 0, 3) for sid in subset])
    assert out.tokens == [alone[sid] for sid in subset]
    for sid in prompts:
        llm.free(sid)


def test_a_poisoned_former_owner_leaves_nothing_behind(engines) -> None:
    _, llm, _ = engines
    ref = []
    for prompt, n_out in (([7, 7] + [6] * 8, 1), ([5, 9, 3], 4)):
        ref.append(llm.step([SeqWork(9, 0, prompt, SP, 0, n_out)]).tokens[0])
        llm.free(9)
    llm.step([SeqWork(sid, 0, [7] * n, SP, 0, 1) for sid, n in ((1, 12), (2, 8), (3, 2))])
    kv = llm.kv
    with torch.inference_mode():  # a fault: seq 1's keys/values went non-finite, and the
        kv.pool[:, :, kv.slot[1], :, : kv.dirty[kv.slot[1]]] = float("nan")  # padding
        kv.pool[:, :, kv.slot[3], :, 2 : kv.dirty[kv.slot[3]]] = float("nan")  # seq 3 wrote
    llm.free(1)  # seq 3 (2 positions) moves into seq 1's slot (12 poisoned positions)
    assert llm.kv.slot[3] == 0
    # seq 4 takes seq 3's old slot; both rows read keys past their own ends
    out = llm.step([SeqWork(3, 2, [6] * 8, SP, 0, 1), SeqWork(4, 0, [5, 9, 3], SP, 0, 4)])
    assert out.tokens == ref
    for sid in (2, 3, 4):
        llm.free(sid)


@pytest.mark.parametrize(
    ("sizes", "most", "want"),
    [
        ([3, 1, 2], 8, [[0, 1, 2]]),
        ([3, 1, 2], 4, [[0, 1], [2]]),
        ([5, 1, 9, 2], 4, [[0], [1], [2], [3]]),
    ],
)
def test_direct_forwards_are_cut_by_real_tokens(sizes, most, want) -> None:
    assert token_chunks(sizes, most) == want
