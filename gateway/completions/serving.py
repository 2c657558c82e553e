"""Text completions: same flow as chat, with a raw text or token-id prompt."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from engines.types import TokenEvent
from gateway.admission import RunSpec, start
from gateway.body import read_json
from gateway.common import (
    check_prompt,
    check_prompt_chars,
    new_id,
    now,
    parse,
    response_headers,
    routing_info,
    sampling_params,
    usage,
)
from gateway.completions.protocol import CompletionRequest, Echo, echo_text, prompt_ids
from gateway.errors import bad_request
from gateway.logprobs import CompletionLogprobs, TokenNames, joined
from gateway.routing import plan_route
from gateway.runner import Run
from gateway.state import GatewayState
from gateway.streaming import collect, stream, wait_admitted
from gateway.tenancy import Tenant


def check_supported(req: CompletionRequest) -> None:
    req.refuse_unimplemented()
    if req.n != 1 or (req.best_of or 1) != 1:
        raise bad_request("n>1 and best_of>1 are not supported: send one request each.", "n")
    if req.max_tokens == 0 and not req.echo:
        raise bad_request("max_tokens=0 returns nothing without echo (prompt scoring).",
                          "max_tokens")  # fmt: skip


async def create_completion(st: GatewayState, tenant: Tenant, request: Request) -> Response:
    arrived = time.perf_counter()
    req = parse(CompletionRequest, await read_json(request, st.settings.max_body_bytes))
    plan = plan_route(req.model, req.routing, st.setup)
    check_supported(req)
    if isinstance(req.prompt, str) or (req.prompt and isinstance(req.prompt[0], str)):
        check_prompt_chars(
            st,
            sum(map(len, req.prompt)) if isinstance(req.prompt, list) else len(req.prompt),
            "prompt",
        )
    try:  # off the event loop: tokenizing a long prompt takes a while
        ids = await asyncio.to_thread(prompt_ids, st.tokenizer, req.prompt)
    except ValueError as e:
        raise bad_request(f"prompt: {e}", "prompt") from e
    check_prompt(st, ids, "prompt")
    vocab = st.scheduler.vocab
    if any(not 0 <= t < vocab for t in ids):
        raise bad_request(f"prompt: token ids must lie in [0, {vocab})", "prompt")
    sampling = sampling_params(
        st, len(ids), req.max_tokens, req.temperature, req.top_p, req.stop, req.seed,
        logprobs=req.logprobs, top_k=max(0, req.top_k or 0),
        prompt_logprobs=req.logprobs if req.echo else None,
    )  # fmt: skip
    spec = RunSpec(new_id("cmpl"), "text_completion", req.model, plan, ids, sampling, arrived,
                   client_id=request.headers.get("x-request-id"))  # fmt: skip
    run = await start(st, tenant, spec, req.seed)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    names = None
    if req.logprobs is not None:
        names = TokenNames(st.tokenizer, as_ids=req.return_tokens_as_token_ids)
    echo = Echo(echo_text(st.tokenizer, req.prompt, ids), ids) if req.echo else None
    fmt = CompletionChunks(st, run, include_usage, names, req.return_token_ids, echo)
    if req.stream:
        await wait_admitted(run, request)
        body = stream(run, request, fmt, plan.return_sources, include_usage)
        headers = {**response_headers(run), "Cache-Control": "no-cache"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)
    answer = await collect(run, request, plan.return_sources)
    logprobs = None
    if names is not None:
        lp = CompletionLogprobs(names)
        head = lp.of_prompt(ids, answer.prompt_logprobs or []) if echo else None
        logprobs = lp.of(answer.tokens) if head is None else joined(head, lp.of(answer.tokens))
    choice: dict[str, Any] = {
        "index": 0,
        "text": answer.text if echo is None else echo.text + answer.text,
        "logprobs": logprobs,
        "finish_reason": answer.finish_reason,
    }
    if req.return_token_ids:  # vLLM's fields: what the engines saw and wrote, as ids
        choice["prompt_token_ids"] = ids
        choice["token_ids"] = [ev.token_id for ev in answer.tokens]
    if plan.return_sources:
        choice["sources"] = answer.sources
    return JSONResponse(
        {**fmt.head(), "choices": [choice], "usage": usage(run), "routing": routing_info(st, run)},
        headers=response_headers(run),
    )


class CompletionChunks:
    """``text_completion`` stream chunks (no role chunk in this API)."""

    def __init__(
        self,
        st: GatewayState,
        run: Run,
        include_usage: bool,
        names: TokenNames | None,
        token_ids: bool = False,
        echo: Echo | None = None,
    ) -> None:
        self.st, self.run, self.created = st, run, now()
        self.echo = echo  # the prompt goes first: its own chunk (with log-probs if asked)
        self.include_usage = include_usage  # OpenAI: then every chunk has "usage": null
        self.logprobs = None if names is None else CompletionLogprobs(names)  # text_offset
        # vLLM's return_token_ids: the first chunk carries prompt_token_ids, every chunk
        # the token_ids it adds.
        self.token_ids = token_ids
        self.prompt_sent = not token_ids
        self.per_token = names is not None or token_ids

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
        if self.echo is None or self.logprobs is not None:  # then it waits for prompt()
            return []
        return [self._chunk(self.echo.text, None)]

    def prompt(self, ev: TokenEvent) -> dict[str, Any] | None:
        """The echoed prompt with its log-probs (the prompt event)."""
        if self.echo is None or self.logprobs is None or ev.prompt_logprobs is None:
            return None
        return self._chunk(
            self.echo.text, None, self.logprobs.of_prompt(self.echo.ids, ev.prompt_logprobs)
        )

    def delta(
        self, text: str, sources: list[dict[str, Any]] | None, token: TokenEvent | None = None
    ) -> dict[str, Any]:
        lp = None
        if self.logprobs is not None and token is not None:
            lp = self.logprobs.of([token])
        extra: dict[str, Any] = {} if sources is None else {"sources": sources}
        if self.token_ids:
            if not self.prompt_sent:
                extra["prompt_token_ids"], self.prompt_sent = self.run.spec.prompt_ids, True
            extra["token_ids"] = [token.token_id] if token is not None else []
        return self._chunk(text, None, lp, **extra)

    def finish(self, reason: str) -> list[dict[str, Any]]:
        return [self._chunk("", reason)]

    def usage(self, run: Run) -> dict[str, Any]:
        return {
            **self.head(),
            "choices": [],
            "usage": usage(run),
            "routing": routing_info(self.st, run),
        }
