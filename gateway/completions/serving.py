"""Text completions: same flow as chat, with a raw text or token-id prompt."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from engines.types import TokenEvent
from gateway.common import (
    check_prompt,
    new_id,
    now,
    parse,
    read_json,
    response_headers,
    routing_info,
    sampling_params,
    usage,
)
from gateway.completions.protocol import CompletionRequest, prompt_ids
from gateway.errors import bad_request
from gateway.logprobs import CompletionLogprobs, TokenNames
from gateway.routing import plan_route
from gateway.runner import Run, RunSpec, launch
from gateway.state import GatewayState
from gateway.streaming import collect, stream
from gateway.tenancy import Tenant


def check_supported(req: CompletionRequest) -> None:
    if req.n != 1 or (req.best_of or 1) != 1:
        raise bad_request("n>1 and best_of>1 are not supported: send one request each.", "n")
    if req.echo:
        raise bad_request("echo is not supported.", "echo")


async def create_completion(st: GatewayState, tenant: Tenant, request: Request) -> Response:
    arrived = time.perf_counter()
    req = parse(CompletionRequest, await read_json(request, st.settings.max_body_bytes))
    plan = plan_route(req.model, req.routing, st.setup)
    check_supported(req)
    try:
        ids = prompt_ids(st.tokenizer, req.prompt)
    except ValueError as e:
        raise bad_request(f"prompt: {e}", "prompt") from e
    check_prompt(st, ids, "prompt")
    vocab = st.scheduler.vocab
    if any(not 0 <= t < vocab for t in ids):
        raise bad_request(f"prompt: token ids must lie in [0, {vocab})", "prompt")
    sampling = sampling_params(
        st, len(ids), req.max_tokens, req.temperature, req.top_p, req.stop, req.seed,
        logprobs=req.logprobs,
    )  # fmt: skip
    spec = RunSpec(new_id("cmpl"), "text_completion", req.model, plan, ids, sampling, arrived)
    run = await launch(st, tenant, spec, req.seed)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    names = TokenNames(st.tokenizer) if req.logprobs is not None else None
    fmt = CompletionChunks(st, run, include_usage, names)
    if req.stream:
        body = stream(run, request, fmt, plan.return_sources, include_usage)
        headers = {**response_headers(run), "Cache-Control": "no-cache"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)
    answer = await collect(run, request, plan.return_sources)
    choice: dict[str, Any] = {
        "index": 0,
        "text": answer.text,
        "logprobs": None if names is None else CompletionLogprobs(names).of(answer.tokens),
        "finish_reason": answer.finish_reason,
    }
    if plan.return_sources:
        choice["sources"] = answer.sources
    return JSONResponse(
        {**fmt.head(), "choices": [choice], "usage": usage(run), "routing": routing_info(st, run)},
        headers=response_headers(run),
    )


class CompletionChunks:
    """``text_completion`` stream chunks (no role chunk in this API)."""

    def __init__(
        self, st: GatewayState, run: Run, include_usage: bool, names: TokenNames | None
    ) -> None:
        self.st, self.run, self.created = st, run, now()
        self.include_usage = include_usage  # OpenAI: then every chunk has "usage": null
        self.logprobs = None if names is None else CompletionLogprobs(names)  # text_offset
        self.wants_logprobs = names is not None

    def head(self) -> dict[str, Any]:
        return {
            "id": self.run.spec.request_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.run.spec.model,
            "system_fingerprint": None,
        }

    def _chunk(
        self, text: str, finish: str | None, logprobs: Any = None, **extra: Any
    ) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish, **extra}
        chunk = {**self.head(), "choices": [choice]}
        return {**chunk, "usage": None} if self.include_usage else chunk

    def opening(self) -> list[dict[str, Any]]:
        return []

    def delta(
        self, text: str, sources: list[dict[str, Any]] | None, token: TokenEvent | None = None
    ) -> dict[str, Any]:
        lp = None
        if self.logprobs is not None and token is not None:
            lp = self.logprobs.of([token])
        extra = {} if sources is None else {"sources": sources}
        return self._chunk(text, None, lp, **extra)

    def finish(self, reason: str) -> dict[str, Any]:
        return self._chunk("", reason)

    def usage(self, run: Run) -> dict[str, Any]:
        return {
            **self.head(),
            "choices": [],
            "usage": usage(run),
            "routing": routing_info(self.st, run),
        }
