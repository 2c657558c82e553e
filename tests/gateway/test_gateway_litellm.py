"""LiteLLM against the gateway, as its users call an OpenAI-compatible server: the
``openai/`` provider with ``api_base``, sync and async, streamed and not, tools, and the
gateway's errors mapped onto LiteLLM's exception classes (which its retries and
fallbacks key on)."""

from __future__ import annotations

import asyncio
import json
import os

import openai
import pytest

ASK = [{"role": "user", "content": "What is 12 + 30?"}]
GREEDY = dict(max_tokens=24, temperature=0, seed=5)


@pytest.fixture(scope="module")
def litellm():
    # No model hub or cost-map download here (nor in most production images): the
    # cost map bundled with the package.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.telemetry = False
    return litellm


@pytest.fixture(scope="module")
def key(gateway) -> str:
    return gateway.new_tenant(limit=10000.0)[1]


@pytest.fixture(scope="module")
def target(gateway, key) -> dict[str, object]:
    return dict(api_base=gateway.url + "/v1", api_key=key, num_retries=0)


@pytest.mark.parametrize("model", ["citer", "llm"])
def test_completion_matches_the_openai_client(litellm, gateway, key, target, model) -> None:
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    want = sdk.chat.completions.create(model=model, messages=ASK, **GREEDY)
    got = litellm.completion(model=f"openai/{model}", messages=ASK, **GREEDY, **target)
    assert got.choices[0].message.content == want.choices[0].message.content
    assert got.choices[0].finish_reason == want.choices[0].finish_reason
    assert got.usage.completion_tokens == want.usage.completion_tokens > 0
    assert got.usage.prompt_tokens == want.usage.prompt_tokens


def test_streamed_and_async_give_the_same_answer(litellm, target) -> None:
    whole = litellm.completion(model="openai/citer", messages=ASK, **GREEDY, **target)
    chunks = list(
        litellm.completion(model="openai/citer", messages=ASK, stream=True, **GREEDY, **target)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"

    async def two_at_once() -> list:
        ask = dict(model="openai/citer", messages=ASK, **GREEDY, **target)
        return await asyncio.gather(litellm.acompletion(**ask), litellm.acompletion(**ask))

    for again in asyncio.run(two_at_once()):  # batched together: same tokens
        assert again.choices[0].message.content == whole.choices[0].message.content


def test_a_named_tool_call_comes_back_as_litellm_tool_calls(litellm, target) -> None:
    add = {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "minimum": 0, "maximum": 999},
                    "b": {"type": "integer", "minimum": 0, "maximum": 999},
                },
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        },
    }
    out = litellm.completion(
        model="openai/citer", messages=ASK, tools=[add],
        tool_choice={"type": "function", "function": {"name": "add"}},
        max_tokens=60, temperature=0, **target,
    )  # fmt: skip
    (call,) = out.choices[0].message.tool_calls
    assert call.function.name == "add" and call.id
    assert set(json.loads(call.function.arguments)) == {"a", "b"}
    assert out.choices[0].finish_reason == "tool_calls"


def test_errors_map_onto_litellm_exceptions(litellm, gateway, target) -> None:
    bad_key = {**target, "api_key": "sk-citer-not-a-key"}
    with pytest.raises(litellm.AuthenticationError):
        litellm.completion(model="openai/citer", messages=ASK, max_tokens=4, **bad_key)
    with pytest.raises(litellm.BadRequestError, match="presence_penalty"):
        litellm.completion(model="openai/citer", messages=ASK, max_tokens=4,
                           presence_penalty=0.5, **target)  # fmt: skip
    with pytest.raises(litellm.NotFoundError, match="no-such-model"):
        litellm.completion(model="openai/no-such-model", messages=ASK, max_tokens=4, **target)
    poor = gateway.new_tenant(limit=0.0)[1]  # no budget: 429 insufficient_quota
    with pytest.raises(litellm.RateLimitError, match="quota|budget"):
        litellm.completion(model="openai/citer", messages=ASK, max_tokens=4,
                           **{**target, "api_key": poor})  # fmt: skip
