"""Driving a Run to a response: OpenAI SSE streams and whole answers.

Both watch the client connection and abort the run when it goes away; the
run's own task then settles the budget (see ``gateway.runner``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any, Protocol

from fastapi import Request

from engines.types import FINISH_ABORT, TokenEvent
from gateway.common import SSE_DONE, source_entry, sse, watch
from gateway.errors import APIError, error_body
from gateway.runner import Run

log = logging.getLogger("citer.gateway")


class ChunkFormat(Protocol):
    """The chunk objects of one endpoint's stream."""

    per_token: bool  # every token gets a chunk (log-probs or token ids asked)

    def opening(self) -> list[dict[str, Any]]: ...

    def delta(
        self, text: str, sources: list[dict[str, Any]] | None, token: TokenEvent | None = None
    ) -> dict[str, Any] | None: ...  # None: nothing to send yet (text held back)

    def prompt(self, ev: TokenEvent) -> dict[str, Any] | None: ...  # the prompt event

    def finish(self, reason: str) -> list[dict[str, Any]]: ...  # what was held, then the end

    def usage(self, run: Run) -> dict[str, Any]: ...


@dataclass
class Answer:
    text: str = ""
    finish_reason: str = "stop"
    sources: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[TokenEvent] = field(default_factory=list)  # one per committed token
    prompt_logprobs: list[Any] | None = None  # per prompt token, if they were asked


def _ended_early(reason: str) -> APIError:
    return APIError(
        503,
        f"The request ended before its answer was complete ({reason}).",
        "server_error",
        code="aborted",
    )


async def wait_admitted(run: Run, request: Request) -> None:
    """Wait until the run holds a batch slot (or has ended) before a stream answers
    200; raises its refusal (503 queue timeout) instead."""
    watcher = watch(request, run)
    try:
        await run.started.wait()
    finally:
        watcher.cancel()
    if run.refusal is not None:
        raise run.refusal


async def collect(run: Run, request: Request, want_sources: bool) -> Answer:
    """The whole answer; aborts the run if the client disconnects first."""
    watcher = watch(request, run)
    parts: list[str] = []
    answer = Answer()
    try:
        async for ev in run.events():
            parts.append(ev.text)
            if ev.prompt_logprobs is not None:
                answer.prompt_logprobs = ev.prompt_logprobs
            if ev.token_id is not None:
                answer.tokens.append(ev)
                if want_sources:
                    answer.sources.append(source_entry(ev))
            if ev.finish_reason is not None:
                answer.finish_reason = ev.finish_reason
    except APIError:
        raise
    except Exception as e:
        raise APIError(500, f"The engine failed while decoding: {e}", "server_error") from e
    finally:
        watcher.cancel()
        run.abort()  # no-op once finished
    if answer.finish_reason == FINISH_ABORT:
        raise _ended_early("aborted: the server is shutting down")
    answer.text = "".join(parts)
    return answer


def merged(batch: list[TokenEvent]) -> list[TokenEvent]:
    """The batch with each run of plain token events (no finish, no prompt log-probs)
    folded into one event that carries their text: a step's tokens go out as one
    chunk, as vLLM streams a multi-token step. Only for streams that send text alone
    (no per-token log-probs, token ids or sources)."""
    out: list[TokenEvent] = []
    for plain, group in groupby(batch, key=_plain):
        run = list(group)
        if plain and len(run) > 1:
            out.append(replace(run[-1], text="".join(ev.text for ev in run)))
        else:
            out.extend(run)
    return out


def _plain(ev: TokenEvent) -> bool:
    return ev.token_id is not None and ev.finish_reason is None and ev.prompt_logprobs is None


async def stream(
    run: Run, request: Request, fmt: ChunkFormat, want_sources: bool, include_usage: bool
) -> AsyncIterator[str]:
    """OpenAI SSE: opening chunk(s), one chunk per step's released text (per token
    when sources, log-probs or token ids are asked), a finish chunk, the usage chunk
    (``choices: []``) if asked, ``[DONE]``; an error after the start is a
    ``data: {"error": ...}`` event."""
    watcher = watch(request, run)
    try:
        for chunk in fmt.opening():
            yield sse(chunk)
        per_token = want_sources or fmt.per_token
        async for batch in run.batches():
            for ev in batch if per_token else merged(batch):
                chunk = None
                if ev.token_id is not None and (ev.text or per_token):
                    sources = [source_entry(ev)] if want_sources else None
                    chunk = fmt.delta(ev.text, sources, ev)
                elif ev.text:
                    chunk = fmt.delta(ev.text, None)
                elif ev.prompt_logprobs is not None:
                    chunk = fmt.prompt(ev)
                if chunk is not None:
                    yield sse(chunk)
                if ev.finish_reason == FINISH_ABORT:
                    raise _ended_early("aborted: the server is shutting down")
                if ev.finish_reason is not None:
                    for chunk in fmt.finish(ev.finish_reason):
                        yield sse(chunk)
        if include_usage:
            yield sse(fmt.usage(run))
        yield SSE_DONE
    except APIError as e:
        yield sse(e.body())
        yield SSE_DONE
    except Exception as e:  # engine failure mid-stream; the client already has a 200
        log.warning("stream %s failed: %s", run.spec.request_id, e)
        yield sse(error_body(f"The engine failed while decoding: {e}", "server_error"))
        yield SSE_DONE
    finally:
        watcher.cancel()
        run.abort()  # client gone (generator closed or cancelled): free the request now
