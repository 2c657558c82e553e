"""The start-up timing behind CITER_SPECULATIVE_MAX_BATCH=auto: its arithmetic, where
it stops, and that timing on real engines leaves their caches and tokens as they were."""

from __future__ import annotations

import pytest

from engines import spec_probe
from engines.async_engine import generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.spec_probe import batches, expected_tokens, gain, probe
from tests.engines.helpers import ModRouter
from tests.engines.test_scheduler import assert_freed, prompts, req


def test_expected_tokens_and_gain() -> None:
    assert expected_tokens(1.0, 8) == 9  # every draft kept, plus the LLM's token
    assert expected_tokens(0.0, 8) == 1  # none kept: the LLM's token only
    assert expected_tokens(0.5, 2) == pytest.approx(1.75)
    # decode 3 s x 1.75 tokens / (drafts 1 s + verify 2 s)
    assert gain((1.0, 2.0, 3.0), 2, 0.5) == pytest.approx(1.75)


def test_batch_sizes() -> None:
    assert batches(16) == [1, 2, 4, 8, 16]
    assert batches(12) == [1, 2, 4, 8, 12]
    assert batches(1) == [1] and batches(0) == []


def _costs(kind: str):  # noqa: ANN202 - (b, window) -> (draft_s, verify_s, decode_s)
    def memory_bound(b: int, k: int) -> tuple[float, float, float]:
        return 0.4, 1.1, 1.0  # a pass costs the same at any width: drafting pays

    def compute_bound(b: int, k: int) -> tuple[float, float, float]:
        return 0.3 * b * k, (k + 1) * b, b  # every row costs: drafting never pays

    def crossover(b: int, k: int) -> tuple[float, float, float]:
        return 0.1 * b * k, 1.0 + 0.15 * b * k, 1.0  # the verify pass grows with the batch

    return {"memory": memory_bound, "compute": compute_bound, "cross": crossover}[kind]


@pytest.mark.parametrize(("kind", "limit", "timed"), [
    ("memory", 16, [1, 2, 4, 8, 16]), ("compute", 0, [1]), ("cross", 2, [1, 2, 4]),
])  # fmt: skip
def test_limit_is_the_last_size_that_gains(engines, monkeypatch, kind: str, limit: int,
                                           timed: list[int]) -> None:  # fmt: skip
    """Timed sizes go 1, 2, 4, ... and stop at the first that loses; the limit is the
    last that gained (0 if the first lost)."""
    slm, llm, _ = engines
    cost, seen = _costs(kind), []

    def fake(slm, llm, ids, window, vocab):  # noqa: ANN001, ANN202
        seen.append(len(ids))
        return cost(len(ids), window)

    monkeypatch.setattr(spec_probe, "_time_batch", fake)
    got = probe(slm, llm, window=4, limit=16, acceptance=0.8)
    assert got.max_batch == limit and seen == timed
    assert [r.batch for r in got.rows] == timed
    assert all((r.gain >= 1) == (r.batch <= limit) for r in got.rows)
    assert got.describe()["rows"][0]["batch"] == 1


def test_a_failed_timing_keeps_the_sizes_timed_before(engines, monkeypatch) -> None:
    """A size that cannot be timed (device memory, say) ends the probe, not the start-up."""
    slm, llm, _ = engines

    def fake(slm, llm, ids, window, vocab):  # noqa: ANN001, ANN202
        if len(ids) == 4:
            raise RuntimeError("out of memory")
        return 0.4, 1.1, 1.0

    monkeypatch.setattr(spec_probe, "_time_batch", fake)
    got = probe(slm, llm, window=4, limit=16, acceptance=0.8)
    assert got.max_batch == 2 and [r.batch for r in got.rows] == [1, 2]
    assert "4 sequences failed" in got.reason and "out of memory" in got.reason


def test_timing_real_engines_leaves_caches_and_tokens_as_they_were(engines) -> None:
    """On the tiny pair: positive times at each size timed, a limit that agrees with the
    rows, no cache left behind, and the same tokens decoded after the probe as before."""
    slm, llm, tok = engines

    def decode() -> list[list[int]]:
        cfg = SchedulerConfig(window=4, max_batch=4, speculative_max_batch=4)
        s = Scheduler(slm, llm, ModRouter(), tok, cfg)
        reqs = [req(f"r{i}", p, max_tokens=12, routing={"speculative": True})
                for i, p in enumerate(prompts(3))]  # fmt: skip
        return [o.token_ids for o in generate_batch(s, reqs)]

    before = decode()
    got = probe(slm, llm, window=4, limit=4)
    assert_freed(engines)
    assert decode() == before
    for engine in (slm, llm):  # what the gateway does after the probe, before a reserve
        engine.release_kv()
        assert engine.kv_usage()[1] == 0
    assert got.rows and [r.batch for r in got.rows] == [1, 2, 4][: len(got.rows)]
    assert all(r.draft_s > 0 and r.verify_s > 0 and r.decode_s > 0 for r in got.rows)
    paid = [r.batch for r in got.rows if r.gain >= 1]
    assert got.max_batch == max(paid, default=0)
    assert len(got.rows) == 3 or got.rows[-1].gain < 1  # stopped early only on a loss
