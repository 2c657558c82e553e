"""Chat completions: validate -> render the chat template -> start a Run -> respond.

Order of checks (the first failing one answers): auth 401 (router), body 413/400,
model 404, routing/limits 400, queue 503, budget 429.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from engines.types import TokenEvent
from gateway.admission import RunSpec, start
from gateway.body import read_json
from gateway.chat.protocol import ChatCompletionRequest, chat_prompt
from gateway.chat.structured import Structure, check_schemas, plan_structure
from gateway.chat.tools import Call, ToolCallReader
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
from gateway.errors import bad_request
from gateway.logprobs import TokenNames, chat_entry, chat_logprobs
from gateway.routing import plan_route
from gateway.runner import Run
from gateway.state import GatewayState
from gateway.streaming import collect, stream, wait_admitted
from gateway.tenancy import Tenant


def check_supported(req: ChatCompletionRequest) -> int | None:
    """Refuse what is not served; return the top-k of log-probs asked (None: none)."""
    req.refuse_unimplemented()
    if req.n != 1:
        raise bad_request("n>1 is not supported: send one request per choice.", "n")
    if req.top_logprobs and not req.logprobs:
        raise bad_request("top_logprobs needs logprobs set to true.", "top_logprobs")
    return (req.top_logprobs or 0) if req.logprobs else None


async def create_chat_completion(st: GatewayState, tenant: Tenant, request: Request) -> Response:
    arrived = time.perf_counter()
    req = parse(ChatCompletionRequest, await read_json(request, st.settings.max_body_bytes))
    plan = plan_route(req.model, req.routing, st.setup)
    top_k = check_supported(req)
    structure = await structure_of(st, req)
    check_prompt_chars(st, sum(len(m.text()) for m in req.messages), "messages")
    try:  # off the event loop: a long conversation takes a while to template
        prompt_ids = await asyncio.to_thread(
            chat_prompt, st.tokenizer, req.messages, structure.tools
        )
    except Exception as e:  # template errors (jinja raise_exception, bad roles)
        raise bad_request(f"messages: {e}", "messages") from e
    check_prompt(st, prompt_ids)
    limit, field = req.completion_limit()
    sampling = sampling_params(
        st, len(prompt_ids), limit, req.temperature, req.top_p, req.stop, req.seed, field, top_k
    )
    spec = RunSpec(new_id("chatcmpl"), "chat", req.model, plan, prompt_ids, sampling, arrived,
                   structure.grammar, request.headers.get("x-request-id"))  # fmt: skip
    run = await start(st, tenant, spec, req.seed)
    want_sources = plan.return_sources
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    names = TokenNames(st.tokenizer) if top_k is not None else None
    reader = ToolCallReader(structure.parallel) if structure.parse_calls else None
    fmt = ChatChunks(st, run, include_usage, names, reader)
    if req.stream:
        await wait_admitted(run, request)
        body = stream(run, request, fmt, want_sources, include_usage)
        headers = {**response_headers(run), "Cache-Control": "no-cache"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)
    answer = await collect(run, request, want_sources)
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
    if reader is not None:
        content = reader.feed(answer.text)[0] + reader.finish()
        message["content"] = content if content or not reader.calls else None
        if reader.calls:
            message["tool_calls"] = [call_object(c) for c in reader.calls]
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None if names is None else chat_logprobs(names, answer.tokens),
        "finish_reason": finish_reason(answer.finish_reason, reader),
    }
    if want_sources:
        choice["sources"] = answer.sources
    return JSONResponse(
        {
            **fmt.head("chat.completion"),
            "choices": [choice],
            "usage": usage(run),
            "routing": routing_info(st, run),
        },
        headers=response_headers(run),
    )


async def structure_of(st: GatewayState, req: ChatCompletionRequest) -> Structure:
    """The request's grammar and tool handling; every schema compiled off the event loop
    (400 naming the one that cannot be enforced)."""
    grammars = st.scheduler.grammars
    lit = grammars.literal if grammars is not None else json.dumps
    structure = plan_structure(
        req.response_format, req.tools, req.tool_choice, req.parallel_tool_calls, lit
    )
    if structure.grammar is None:
        return structure
    if grammars is None:
        param = "response_format" if req.response_format is not None else "tool_choice"
        raise bad_request(f"{param}: structured output is not available on this gateway "
                          f"({st.scheduler.no_grammar}).", param)  # fmt: skip
    await asyncio.to_thread(check_schemas, grammars, req.response_format, req.tools)
    why = await asyncio.to_thread(grammars.check, structure.grammar)
    if why:
        raise bad_request(f"tools: the output grammar cannot be enforced ({why}).", "tools")
    return structure


def call_object(c: Call) -> dict[str, Any]:
    return {"id": c.id, "type": "function",
            "function": {"name": c.name, "arguments": c.arguments}}  # fmt: skip


def finish_reason(reason: str, reader: ToolCallReader | None) -> str:
    """OpenAI's "tool_calls" when the model stopped after calling tools."""
    return "tool_calls" if reason == "stop" and reader is not None and reader.calls else reason


class ChatChunks:
    """``chat.completion.chunk`` objects: one id and created time for the whole stream."""

    def __init__(
        self,
        st: GatewayState,
        run: Run,
        include_usage: bool,
        names: TokenNames | None,
        reader: ToolCallReader | None = None,
    ) -> None:
        self.st, self.run, self.created = st, run, now()
        self.include_usage = include_usage  # OpenAI: then every chunk has "usage": null
        self.names = names  # set when the request asked for log-probs
        self.per_token = names is not None
        self.reader = reader  # tool calls are read from the text (tools in use)

    def head(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.run.spec.request_id,
            "object": obj,
            "created": self.created,
            "model": self.run.spec.model,
            "system_fingerprint": None,
        }

    def _chunk(
        self, delta: dict[str, Any], finish: str | None, logprobs: Any = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        chunk = {**self.head("chat.completion.chunk"), "choices": [choice]}
        return {**chunk, "usage": None} if self.include_usage else chunk

    def opening(self) -> list[dict[str, Any]]:
        first = self._chunk({"role": "assistant", "content": ""}, None)
        first["routing"] = routing_info(self.st, self.run)
        return [first]

    def delta(
        self, text: str, sources: list[dict[str, Any]] | None, token: TokenEvent | None = None
    ) -> dict[str, Any] | None:
        delta: dict[str, Any] = {"content": text}
        if self.reader is not None:
            content, calls = self.reader.feed(text)
            delta = {"content": content} if content else {}
            if calls:
                delta["tool_calls"] = calls
            if not delta and sources is None and not self.per_token:
                return None  # held back: it may open a tool call
        if sources is not None:
            delta["sources"] = sources
        logprobs = None
        if self.names is not None and token is not None:
            logprobs = {"content": [chat_entry(self.names, token)], "refusal": None}
        return self._chunk(delta, None, logprobs)

    def prompt(self, ev: TokenEvent) -> dict[str, Any] | None:
        return None  # chat never asks for prompt log-probs

    def finish(self, reason: str) -> list[dict[str, Any]]:
        held = self.reader.finish() if self.reader is not None else ""
        last = self._chunk({}, finish_reason(reason, self.reader))
        return [self._chunk({"content": held}, None), last] if held else [last]

    def usage(self, run: Run) -> dict[str, Any]:
        return {
            **self.head("chat.completion.chunk"),
            "choices": [],
            "usage": usage(run),
            "routing": routing_info(self.st, run),
        }
