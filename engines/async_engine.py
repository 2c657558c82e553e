"""Drivers of the scheduler's step loop: asyncio streaming and offline batches.

    AsyncEngine.submit(Request) -> RequestHandle   (validated on the caller's thread)
    background thread: while work: scheduler.step() -> TokenEvents
        --one loop.call_soon_threadsafe per step--> each request's asyncio.Queue
    async for ev in handle: ...   (ends after the event with a finish_reason)
    await handle.admitted.wait()  (it holds a batch slot; never set if it ends unstarted)

Model compute never runs on the event loop; the thread sleeps when there is
no work and wakes on submit/abort.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial

from engines.scheduler import Scheduler
from engines.stats import RequestStats
from engines.types import Request, RequestOutput, TokenEvent


class RequestHandle:
    """The stream of one request's committed tokens."""

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.request_id = request_id
        self._loop = loop
        self._queue: asyncio.Queue[TokenEvent | BaseException] = asyncio.Queue()
        self.finished = False
        self.admitted = asyncio.Event()  # set once the request holds a batch slot

    def _push(self, item: TokenEvent | BaseException) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[TokenEvent]:
        while not self.finished:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                self.finished = True
                raise item
            self.finished = item.finish_reason is not None
            yield item


class AsyncEngine:
    """Runs ``scheduler.step`` on a background thread; one instance per scheduler."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._handles: dict[str, RequestHandle] = {}
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """The step thread is running (started and not stopped or dead)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="citer-step", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the step loop; unfinished streams end with finish_reason "abort"."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for rid in list(self._handles):
            self.scheduler.abort(rid)
        if self._handles:
            self._dispatch(self.scheduler.step())  # the aborts free their caches here

    def submit(self, request: Request) -> RequestHandle:
        """Queue a request; raises ValueError for bad input before any engine work.

        Must be called from the event loop that will iterate the handle.
        """
        self.start()
        rid = request.request_id
        if rid in self._handles:
            raise ValueError(f"request_id={rid!r}: already in use")
        handle = RequestHandle(rid, asyncio.get_running_loop())
        self._handles[rid] = handle  # before the step thread can emit for it
        try:
            self.scheduler.add_request(request)  # validates; raises before any engine work
        except Exception:
            del self._handles[rid]
            raise
        self._wake.set()
        return handle

    def abort(self, request_id: str) -> None:
        """The request ends within one step with finish_reason "abort"."""
        self.scheduler.abort(request_id)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop:
            if not self.scheduler.has_work():
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                events = self.scheduler.step()
            except Exception as e:  # fail every waiting stream; the loop goes on
                for rid in list(self._handles):
                    self._handles.pop(rid)._push(e)
                    self.scheduler.abort(rid)
                continue
            self._dispatch(events)

    def _dispatch(self, events: list[TokenEvent]) -> None:
        """Hand a step's events to their streams with one wake-up of each event loop
        (not one per token: at c=64 a step commits hundreds), in commit order, so a
        stream finds all of a step's tokens queued at once (``gateway.streaming``)."""
        calls: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
        for rid in self.scheduler.admitted:
            handle = self._handles.get(rid)
            if handle is not None:
                calls.setdefault(handle._loop, []).append(handle.admitted.set)
        for ev in events:
            handle = self._handles.get(ev.request_id)
            if handle is None:
                continue
            if ev.finish_reason is not None:
                del self._handles[ev.request_id]
            calls.setdefault(handle._loop, []).append(partial(handle._queue.put_nowait, ev))
        for loop, fns in calls.items():
            loop.call_soon_threadsafe(_run_all, fns)


def _run_all(fns: list[Callable[[], None]]) -> None:
    for fn in fns:
        fn()


class OutputBuilder:
    """Accumulates one request's events into a RequestOutput."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.token_ids: list[int] = []
        self.text: list[str] = []
        self.sources: list[str] = []
        self.scores: list[float] = []
        self.logprobs: list[float] = []
        self.top_logprobs: list[list[tuple[int, float]]] = []
        self.output: RequestOutput | None = None
        self.prompt: TokenEvent | None = None  # the prompt event, if it asked for one

    def add(self, ev: TokenEvent) -> None:
        if ev.token_id is not None:
            self.token_ids.append(ev.token_id)
            self.sources.append(ev.source or "")
            self.scores.append(ev.score if ev.score is not None else float("nan"))
            if ev.logprob is not None:
                self.logprobs.append(ev.logprob)
                self.top_logprobs.append(ev.top_logprobs or [])
        self.text.append(ev.text)
        if ev.prompt_logprobs is not None:
            self.prompt = ev
        if ev.finish_reason is not None:
            self.output = RequestOutput(
                self.request.request_id,
                list(self.request.prompt_ids),
                self.token_ids,
                "".join(self.text),
                self.sources,
                self.scores,
                ev.finish_reason,
                ev.stats or RequestStats(),
                self.logprobs,
                self.top_logprobs,
                self.prompt.prompt_logprobs if self.prompt else None,
                self.prompt.prompt_sources if self.prompt else None,
            )


def generate_batch(
    scheduler: Scheduler,
    requests: Iterable[Request],
    on_done: Callable[[RequestOutput], None] | None = None,
) -> list[RequestOutput]:
    """Decode ``requests`` to completion with the same step loop; outputs in input order.

    ``on_done`` sees each output as its request finishes (progress for long sweeps).
    For offline eval: do not call it on a scheduler an AsyncEngine is driving.
    """
    reqs = list(requests)
    for req in reqs:  # reject bad input before queueing any of them
        scheduler.validate(req)
    builders = {}
    for req in reqs:
        scheduler.add_request(req)
        builders[req.request_id] = OutputBuilder(req)
    while scheduler.has_work():
        for ev in scheduler.step():
            if ev.request_id in builders:
                b = builders[ev.request_id]
                b.add(ev)
                if on_done is not None and ev.finish_reason is not None and b.output:
                    on_done(b.output)
    missing = [rid for rid, b in builders.items() if b.output is None]
    if missing:
        raise RuntimeError(f"requests {missing[:3]} ended without a final event")
    return [b.output for b in builders.values()]  # type: ignore[misc]
