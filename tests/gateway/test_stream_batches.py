"""A scheduler step's tokens leave as one SSE chunk: the event batching, in isolation."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from engines.types import TokenEvent
from gateway.runner import Run
from gateway.streaming import merged


def tok(text: str, tid: int = 1, finish: str | None = None) -> TokenEvent:
    return TokenEvent("r", tid, text, "slm", 0.1, finish)


def test_merged_folds_runs_of_plain_tokens_and_keeps_the_rest_in_order() -> None:
    prompt = TokenEvent("r", None, "", None, None, prompt_logprobs=[None])
    batch = [prompt, tok("a", 1), tok("b", 2), tok("", 3), tok("c", 4), tok("d", 5, "stop")]
    out = merged(batch)
    assert [e.text for e in out] == ["", "abc", "d"]
    assert out[0] is prompt and out[2] is batch[-1]  # the final event keeps its own chunk
    assert out[1].token_id == 4 and out[1].finish_reason is None
    assert merged([tok("x")]) == [tok("x")] and merged([]) == []


def drain(items: list) -> list[list[TokenEvent] | str]:
    """What Run.batches yields for ``items`` already queued (errors as 'raised: ...')."""

    async def go() -> list:
        q: asyncio.Queue = asyncio.Queue()
        for item in items:
            q.put_nowait(item)
        got: list = []
        try:
            async for batch in Run.batches(SimpleNamespace(queue=q)):  # type: ignore[arg-type]
                got.append([e.text for e in batch])
        except RuntimeError as e:
            got.append(f"raised: {e}")
        return got

    return asyncio.run(go())


def test_batches_take_what_has_arrived_and_end_at_the_final_event() -> None:
    assert drain([tok("a"), tok("b"), tok("c", finish="stop"), tok("late")]) == [["a", "b", "c"]]


def test_batches_yield_the_events_before_an_error_then_raise_it() -> None:
    assert drain([tok("a"), tok("b"), RuntimeError("boom")]) == [["a", "b"], "raised: boom"]
    assert drain([RuntimeError("boom")]) == ["raised: boom"]


def test_batches_wait_for_the_next_step() -> None:
    async def go() -> list[list[str]]:
        q: asyncio.Queue = asyncio.Queue()
        got: list[list[str]] = []

        async def steps() -> None:
            for texts in (["a", "b"], ["c"], ["d", "e"]):
                await asyncio.sleep(0.01)
                for t in texts:  # a step's events arrive in one callback
                    q.put_nowait(tok(t, finish="stop" if t == "e" else None))

        feeder = asyncio.create_task(steps())
        async for batch in Run.batches(SimpleNamespace(queue=q)):  # type: ignore[arg-type]
            got.append([e.text for e in batch])
        await feeder
        return got

    assert asyncio.run(go()) == [["a", "b"], ["c"], ["d", "e"]]


@pytest.mark.parametrize("n", [1, 3])
def test_events_are_the_batches_flattened(n: int) -> None:
    async def go() -> list[str]:
        q: asyncio.Queue = asyncio.Queue()
        for i in range(n):
            q.put_nowait(tok(str(i), finish="stop" if i == n - 1 else None))
        run = SimpleNamespace(queue=q)
        run.batches = lambda: Run.batches(run)  # type: ignore[arg-type]
        return [e.text async for e in Run.events(run)]  # type: ignore[arg-type]

    assert asyncio.run(go()) == [str(i) for i in range(n)]
