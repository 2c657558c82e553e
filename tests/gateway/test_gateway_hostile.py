"""Hostile input against a live gateway: each answer is a clear 4xx (never a 500),
the keep-alive connection survives it, nothing is reserved or billed for it, and
streams of another tenant running meanwhile finish with exactly their tokens."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from loadtests.hostile import CHAT, REFUSED, TEXT

EXTREME = [
    {"temperature": 1, "top_k": 1180591620717411303424},
    {"temperature": 1, "top_p": 1e-320},
    {"temperature": 1e-320},
]


@pytest.fixture(scope="module")
def tenant(gateway) -> tuple[str, str]:
    return gateway.new_tenant(limit=1000.0)


def test_hostile_bodies_are_400_on_a_connection_that_stays_usable(gateway, tenant) -> None:
    tid, key = tenant
    before = gateway.usage(tid)["requests"]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as c:
        for path, body, param in REFUSED:
            r = c.post(path, content=body.encode("utf-8", "surrogatepass"))
            assert r.status_code == 400, (body[:80], r.text[:300])
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["message"]
            assert err["type"] == "invalid_request_error"
            if param is not None:
                assert err["param"] == param, (body[:80], err)
            assert r.headers.get("connection") != "close", body[:80]
        ok = c.post("/v1/chat/completions", json=CHAT)  # same connection, still serving
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] is not None
    after = gateway.usage(tid)["requests"]
    assert after["granted"] == before["granted"] + 1  # no refused request reserved budget
    assert after["failed"] == before["failed"]


@pytest.mark.parametrize(
    "extra",
    [
        {"presence_penalty": 0, "frequency_penalty": 0.0, "logit_bias": {}},
        {"tools": [], "tool_choice": "none", "parallel_tool_calls": True},
        {"response_format": {"type": "text"}, "store": False, "stop": ["\n\n", ""]},
    ],
)
def test_neutral_values_of_unimplemented_fields_are_accepted(gateway, tenant, extra) -> None:
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {tenant[1]}"},
        json={**CHAT, **extra},
        timeout=60,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("sampling", EXTREME)
def test_extreme_sampling_values_are_normalised_not_fatal(gateway, tenant, sampling) -> None:
    """vLLM's rules: a tiny temperature is greedy, top_k past the vocabulary is off, a
    tiny top_p keeps the most likely token; so each answers like greedy decoding."""
    url, headers = f"{gateway.url}/v1/completions", {"Authorization": f"Bearer {tenant[1]}"}
    body = {"model": "llm", "prompt": "12+30=", "max_tokens": 6, "seed": 3}
    greedy = httpx.post(url, headers=headers, json={**body, "temperature": 0}, timeout=60)
    r = httpx.post(url, headers=headers, json={**body, **sampling}, timeout=60)
    assert r.status_code == 200, r.text
    if "top_k" not in sampling:
        assert r.json()["choices"][0]["text"] == greedy.json()["choices"][0]["text"]


def test_a_prompt_far_over_the_limit_is_refused_before_tokenizing(gateway, tenant) -> None:
    body = {"model": "citer", "prompt": "a " * 480_000, "max_tokens": 2}  # ~960 KB
    r = httpx.post(
        f"{gateway.url}/v1/completions",
        headers={"Authorization": f"Bearer {tenant[1]}"},
        json=body,
        timeout=60,
    )
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "context_length_exceeded"
    assert "characters" in err["message"]  # the cheap bound answered, not the tokenizer


async def test_hostile_requests_leave_another_tenants_streams_intact(gateway) -> None:
    """Blast radius: 8 streams of tenant A, with tenant B's hostile requests sent while
    they run; every stream ends normally with the tokens it has alone."""
    _, key_a = gateway.new_tenant(limit=1000.0)
    _, key_b = gateway.new_tenant(limit=1000.0)
    prompts = ["12+30=", "sort: 9 8 7 6 5 4 3 2 1", "hello", "A shop has", "xyz", "7+8=",
               "The answer is", "sort: 3 1 2"]  # fmt: skip
    url = gateway.url

    def body(p: str) -> dict:
        return {"model": "citer", "prompt": p, "max_tokens": 48, "temperature": 0}

    async def one(c: httpx.AsyncClient, p: str) -> tuple[str, str | None]:
        text, finish = [], None
        headers = {"Authorization": f"Bearer {key_a}"}
        async with c.stream("POST", "/v1/completions", headers=headers,
                            json={**body(p), "stream": True}) as r:  # fmt: skip
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                text.append(chunk["choices"][0]["text"])
                finish = chunk["choices"][0]["finish_reason"] or finish
        return "".join(text), finish

    async def hostile(c: httpx.AsyncClient) -> list[int]:
        headers = {"Authorization": f"Bearer {key_b}", "Content-Type": "application/json"}
        codes = []
        for path, raw, _ in REFUSED:
            r = await c.post(path, content=raw.encode("utf-8", "surrogatepass"), headers=headers)
            codes.append(r.status_code)
        for extreme in EXTREME:
            sample = {**TEXT, **extreme, "max_tokens": 16}
            r = await c.post("/v1/completions", json=sample, headers=headers)
            codes.append(r.status_code)
        return codes

    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        alone = {}
        for p in prompts:
            r = await c.post("/v1/completions", json=body(p),
                             headers={"Authorization": f"Bearer {key_a}"})  # fmt: skip
            alone[p] = (r.json()["choices"][0]["text"], r.json()["choices"][0]["finish_reason"])
        results = await asyncio.gather(*(one(c, p) for p in prompts), hostile(c))
    codes = results[-1]
    assert codes == [400] * len(REFUSED) + [200] * 3
    assert dict(zip(prompts, results[:-1], strict=True)) == alone
