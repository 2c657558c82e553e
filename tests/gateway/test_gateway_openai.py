"""The official openai SDK (sync and async, streaming and not) against a live gateway."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import openai
import pytest

MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "add 12 and 30"}]
MIXED = {"routing": {"threshold": 0.6}}  # an explicit threshold (who writes depends on the pair)


def check_usage(usage) -> None:
    extra = usage.model_extra
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert extra["slm_tokens"] + extra["llm_tokens"] == usage.completion_tokens
    share = extra["llm_tokens"] / max(1, usage.completion_tokens)
    assert extra["llm_token_share"] == pytest.approx(share, abs=1e-6)
    assert extra["cost"] > 0


def test_chat_stream_equals_non_stream_and_carries_usage(client: openai.OpenAI) -> None:
    kw = {"model": "citer", "messages": MSG, "max_tokens": 12, "temperature": 0, "seed": 1}
    whole = client.chat.completions.create(**kw, extra_body=MIXED)
    assert whole.object == "chat.completion" and whole.id.startswith("chatcmpl-")
    assert whole.choices[0].message.role == "assistant"
    assert whole.choices[0].finish_reason in ("stop", "length")
    check_usage(whole.usage)
    chunks = list(
        client.chat.completions.create(
            **kw, stream=True, stream_options={"include_usage": True}, extra_body=MIXED
        )
    )
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    *body, finish, last = chunks
    assert finish.choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in body)
    assert last.choices == [] and last.usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text == whole.choices[0].message.content  # same tokens, streamed or not
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    check_usage(last.usage)


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="citer", messages=MSG, max_tokens=4, temperature=0, stream=True
        )
    )
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_async_sdk_chat_and_completions_concurrently(gateway, key) -> None:
    async def main() -> list:
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        chat = [
            client.chat.completions.create(
                model="citer", messages=MSG, max_tokens=6, temperature=0.8, seed=s
            )
            for s in range(3)
        ]
        text = client.completions.create(
            model="citer", prompt="12+30=", max_tokens=6, temperature=0
        )
        ids = client.completions.create(model="llm", prompt=[5, 6, 7], max_tokens=6, temperature=0)
        stream = await client.completions.create(
            model="slm",
            prompt="12+30=",
            max_tokens=6,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
        return [*await asyncio.gather(*chat, text, ids), chunks]

    *chats, text, ids, chunks = asyncio.run(main())
    for r in chats:
        check_usage(r.usage)
    assert text.object == "text_completion" and text.choices[0].text is not None
    assert ids.usage.prompt_tokens == 3 and ids.usage.model_extra["slm_tokens"] == 0
    assert chunks[-1].choices == [] and chunks[-1].usage.model_extra["llm_tokens"] == 0
    streamed = "".join(c.choices[0].text for c in chunks[:-1])
    again = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key).completions.create(
        model="slm", prompt="12+30=", max_tokens=6, temperature=0
    )
    assert streamed == again.choices[0].text


def test_model_names_and_sources(client: openai.OpenAI) -> None:
    kw = {"messages": MSG, "max_tokens": 8, "temperature": 0}
    src = {"routing": {"return_sources": True, "threshold": 0.6}}
    mixed = client.chat.completions.create(model="citer", extra_body=src, **kw)
    sources = mixed.choices[0].model_extra["sources"]
    assert len(sources) == mixed.usage.completion_tokens
    assert "".join(s["text"] for s in sources) == mixed.choices[0].message.content
    assert sum(s["source"] == "llm" for s in sources) == mixed.usage.model_extra["llm_tokens"]
    assert mixed.model_extra["routing"]["threshold"] == 0.6
    slm = client.chat.completions.create(
        model="slm", extra_body={"routing": {"return_sources": True}}, **kw
    )
    assert {s["source"] for s in slm.choices[0].model_extra["sources"]} == {"slm"}
    llm = client.chat.completions.create(model="llm", **kw)
    assert llm.usage.model_extra["slm_tokens"] == 0 and llm.usage.model_extra["llm_tokens"] > 0
    chunks = list(client.chat.completions.create(model="citer", stream=True, extra_body=src, **kw))
    streamed = [
        s for c in chunks if c.choices for s in c.choices[0].delta.model_extra.get("sources") or []
    ]
    assert [s["token_id"] for s in streamed] == [s["token_id"] for s in sources]


def test_models_health_ready_version(gateway, client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == ["citer", "slm", "llm", "speculative"]
    routing = client.models.retrieve("citer").model_extra["citer"]["routing"]
    assert routing["policy"] in ("citer", "confidence") and routing["note"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    assert httpx.get(gateway.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"engine": "ok", "store": "ok"}
    assert httpx.get(gateway.url + "/version").json()["policy"] == routing["policy"]


def test_raw_sse_framing(gateway, key) -> None:
    """Exactly OpenAI's wire format: data lines, "usage": null until the usage chunk, [DONE]."""
    body = {"model": "citer", "messages": MSG, "max_tokens": 3, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, headers=headers
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1]) and chunks[-1]["usage"]["total_tokens"]


def test_target_share_model_uses_the_card_calibration(gateway, client: openai.OpenAI) -> None:
    routing = client.models.retrieve("citer").model_extra["citer"]["routing"]
    kw = {"model": "citer:0.2", "messages": MSG, "max_tokens": 4, "temperature": 0}
    if not routing["calibrated"]:  # confidence fallback: no calibration to look the share up in
        with pytest.raises(openai.BadRequestError, match="calibrated CITER router card"):
            client.chat.completions.create(**kw)
        return
    from router_models.card import CalibrationPoint
    from router_models.share import threshold_for_share

    card = SimpleNamespace(calibration=[CalibrationPoint(**c) for c in routing["calibration"]])
    r = client.chat.completions.create(**kw)
    assert r.model_extra["routing"]["threshold"] == pytest.approx(threshold_for_share(card, 0.2))
    assert r.model_extra["routing"]["target_llm_share"] == 0.2


def test_a_step_s_tokens_stream_as_one_chunk(client: openai.OpenAI) -> None:
    """The SLM drafts several tokens per scheduler step; a text-only stream sends each
    step's text as one chunk (fewer chunks than tokens), and the text is unchanged.
    With log-probs asked, every token keeps its own chunk."""
    kw = {"model": "slm", "messages": MSG, "max_tokens": 24, "temperature": 0}
    whole = client.chat.completions.create(**kw)
    n = whole.usage.completion_tokens
    chunks = list(client.chat.completions.create(**kw, stream=True))
    texts = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(texts) == whole.choices[0].message.content
    assert n >= 4 and 1 <= len(texts) < n
    per_token = list(client.chat.completions.create(**kw, stream=True, logprobs=True))
    entries = [len(c.choices[0].logprobs.content) for c in per_token if c.choices[0].logprobs]
    assert entries == [1] * n
