"""The serving benchmark's client retries a connection that failed before any response,
as the openai client does, and never a stream that had started. The failure is a fake
transport's: a keep-alive race with a real server cannot be produced on demand."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from benchmarks.serving_client import RETRIES, body, stream_chat

CHUNKS = [{"choices": [{"delta": {"content": w}}]} for w in ("The answer", " is 7.")]
SSE = "".join(f"data: {json.dumps(c)}\n\n" for c in CHUNKS)
SSE += 'data: {"choices": [], "usage": {"completion_tokens": 5}}\n\ndata: [DONE]\n\n'


def _client(fail_first: int) -> tuple[httpx.AsyncClient, list[int]]:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= fail_first:
            raise httpx.ReadError("connection reset before the response", request=request)
        return httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://t"), calls


@pytest.mark.parametrize("fail_first", [0, 1, RETRIES])
def test_a_failed_connection_is_retried_and_counted(fail_first: int) -> None:
    async def run() -> None:
        client, calls = _client(fail_first)
        async with client:
            s = await stream_chat(client, body("llm", [{"role": "user", "content": "x"}], 8))
        assert (s.text, s.tokens, s.retries, len(calls)) == (
            "The answer is 7.", 5, fail_first, fail_first + 1)  # fmt: skip
        assert 0 < s.ttft_s <= s.e2e_s

    asyncio.run(run())


def test_retries_are_bounded() -> None:
    async def run() -> None:
        client, calls = _client(RETRIES + 1)
        async with client:
            with pytest.raises(httpx.ReadError):
                await stream_chat(client, body("llm", [{"role": "user", "content": "x"}], 8))
        assert len(calls) == RETRIES + 1

    asyncio.run(run())


def test_a_stream_that_broke_after_the_response_is_not_retried() -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            yield f"data: {json.dumps(CHUNKS[0])}\n\n".encode()
            raise httpx.ReadError("connection reset mid-stream")

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, stream=Broken())

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                     base_url="http://t") as client:  # fmt: skip
            with pytest.raises(httpx.ReadError):
                await stream_chat(client, body("llm", [{"role": "user", "content": "x"}], 8))
        assert len(calls) == 1  # the tokens a client already saw are never asked for twice

    asyncio.run(run())
