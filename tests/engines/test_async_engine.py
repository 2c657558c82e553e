from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engines.async_engine import AsyncEngine, RequestHandle, generate_batch
from engines.scheduler import Scheduler, SchedulerConfig
from engines.types import Request, SamplingParams, TokenEvent
from tests.engines.helpers import ModRouter


def make(engines) -> Scheduler:
    slm, llm, tok = engines
    return Scheduler(slm, llm, ModRouter(), tok, SchedulerConfig(window=3))


def reqs() -> list[Request]:
    sp = [SamplingParams(max_tokens=12 + 3 * i, seed=i, temperature=0.8) for i in range(3)]
    return [Request(f"r{i}", [5 + i, 9, 11 + 2 * i], sp[i]) for i in range(3)]


async def drain(handle: RequestHandle) -> list[TokenEvent]:
    return [ev async for ev in handle]


def test_streams_equal_offline_generation_and_step_off_the_loop(engines) -> None:
    sched = make(engines)
    step_threads: set[int] = set()
    step = sched.step

    def spy():
        step_threads.add(threading.get_ident())
        return step()

    sched.step = spy  # type: ignore[method-assign]
    engine = AsyncEngine(sched)

    async def main() -> list[list[TokenEvent]]:
        handles = [engine.submit(r) for r in reqs()]
        return await asyncio.gather(*(drain(h) for h in handles))

    streams = asyncio.run(main())
    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    engine.stop()
    assert step_threads and loop_thread not in step_threads
    offline = generate_batch(make(engines), reqs())
    for events, out in zip(streams, offline, strict=True):
        assert [e.token_id for e in events] == out.token_ids
        assert [e.source for e in events] == out.sources
        assert "".join(e.text for e in events) == out.text
        assert events[-1].finish_reason == out.finish_reason
        assert all(e.finish_reason is None for e in events[:-1])
        assert events[-1].stats == out.stats
    assert engines[0].num_caches() == 0 and engines[1].num_caches() == 0


def test_abort_ends_the_stream_and_frees_its_caches(engines) -> None:
    engine = AsyncEngine(make(engines))

    async def main() -> tuple[list[TokenEvent], list[TokenEvent]]:
        long = engine.submit(Request("long", [5, 6], SamplingParams(max_tokens=80)))
        other = engine.submit(Request("other", [7, 8], SamplingParams(max_tokens=20)))
        got = []
        async for ev in long:
            got.append(ev)
            if len(got) == 3:
                engine.abort("long")
        return got, await drain(other)

    got, other = asyncio.run(main())
    assert got[-1].finish_reason == "abort" and got[-1].token_id is None
    assert len(got) < 80  # it ended early
    engine.stop()
    (alone,) = generate_batch(
        make(engines), [Request("other", [7, 8], SamplingParams(max_tokens=20))]
    )
    assert [e.token_id for e in other] == alone.token_ids  # undisturbed by the abort
    assert engines[0].num_caches() == 0 and engines[1].num_caches() == 0


def test_bad_input_raises_at_submit_and_idle_loop_sleeps(engines) -> None:
    engine = AsyncEngine(make(engines))

    async def main() -> list[TokenEvent]:
        with pytest.raises(ValueError, match="^prompt: must have at least 1 token"):
            engine.submit(Request("bad", []))
        with pytest.raises(ValueError, match="^max_tokens=9999"):
            engine.submit(Request("bad", [5], SamplingParams(max_tokens=9999)))
        first = await drain(engine.submit(Request("a", [5], SamplingParams(max_tokens=4))))
        cpu = time.process_time()
        await asyncio.sleep(0.3)  # no work: the step thread must sleep, not spin
        assert time.process_time() - cpu < 0.05
        return first + await drain(engine.submit(Request("b", [6], SamplingParams(max_tokens=4))))

    assert not engine.alive  # the step thread starts with the first request
    events = asyncio.run(main())
    assert engine.alive
    engine.stop()
    assert [e.request_id for e in events] == ["a"] * 4 + ["b"] * 4
    assert not engine.alive


def test_stop_ends_open_streams_with_abort(engines) -> None:
    engine = AsyncEngine(make(engines))

    async def main() -> list[TokenEvent]:
        handle = engine.submit(Request("long", [5, 6], SamplingParams(max_tokens=80)))
        got = []
        async for ev in handle:
            got.append(ev)
            if len(got) == 2:
                await asyncio.to_thread(engine.stop)
        return got

    got = asyncio.run(main())
    assert got[-1].finish_reason == "abort" and len(got) < 80
    assert engines[0].num_caches() == 0 and engines[1].num_caches() == 0


def test_generate_batch_reports_each_request_once_as_it_finishes(engines) -> None:
    short = Request("short", [6, 9], SamplingParams(max_tokens=1))
    done = []
    outs = generate_batch(make(engines), [*reqs(), short], done.append)
    assert sorted(map(id, done)) == sorted(map(id, outs))  # each final output, once
    assert done[0].request_id == "short"  # reported when it ends, not after the batch
