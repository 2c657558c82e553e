"""Structured output and tools through a live gateway, with the clients people use:
the openai SDK's ``parse`` / ``stream`` with a Pydantic model, json_object, tool calls
(named, required, auto) streamed and not, and refusals naming the field."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

MODELS = ["slm", "llm", "citer"]
ASK = [{"role": "user", "content": "What is 12 + 30?"}]
# Bounded: the demo models never learnt to end a number inside JSON, so an unbounded
# integer runs on until max_tokens (a grammar allows it; a real model stops).
INT = {"type": "integer", "minimum": -99999, "maximum": 99999}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": INT, "b": INT},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}
NOW = {"type": "function", "function": {"name": "now", "description": "The time."}}


class Answer(BaseModel):
    answer: int = Field(ge=-99999, le=99999)


@pytest.fixture(scope="module")
def key(gateway) -> str:
    return gateway.new_tenant(limit=10000.0)[1]


@pytest.mark.parametrize("model", MODELS)
def test_sdk_parse_returns_the_model_streamed_and_not(client: openai.OpenAI, model: str) -> None:
    kw = dict(model=model, messages=ASK, response_format=Answer, max_tokens=40, seed=3)
    whole = client.chat.completions.parse(**kw, temperature=0)
    assert isinstance(whole.choices[0].message.parsed, Answer)
    assert whole.choices[0].finish_reason == "stop"
    with client.chat.completions.stream(**kw, temperature=0) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == whole.choices[0].message.parsed
    usage = whole.usage.model_extra
    assert usage["forced_tokens"] >= 4  # '{"answer":' costs the LLM nothing
    if model == "slm":
        assert usage["llm_tokens"] == 0


def test_json_object_and_a_tight_max_tokens(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="citer", messages=ASK, response_format={"type": "json_object"}, max_tokens=64,
        temperature=0,
    )  # fmt: skip
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(out.choices[0].message.content), dict)
    cut = client.chat.completions.create(
        model="citer", messages=ASK, max_tokens=5, temperature=0,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "a", "schema": Answer.model_json_schema()}},
    )  # fmt: skip
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 5  # the grammar never outruns the reservation
    assert cut.choices[0].message.content.startswith('{"answer"')


def _stream_calls(client: openai.OpenAI, **kw) -> tuple[dict[int, dict], str, str | None]:
    calls: dict[int, dict] = {}
    content, finish = "", None
    for chunk in client.chat.completions.create(**kw, stream=True):
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        content += d.content or ""
        finish = chunk.choices[0].finish_reason or finish
        for tc in d.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return calls, content, finish


@pytest.mark.parametrize("model", MODELS)
def test_named_tool_call_streamed_equals_whole(client: openai.OpenAI, model: str) -> None:
    kw = dict(model=model, messages=ASK, tools=[ADD, NOW], max_tokens=100, temperature=0,
              tool_choice={"type": "function", "function": {"name": "add"}})  # fmt: skip
    whole = client.chat.completions.create(**kw)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "add" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    assert set(args) == {"a", "b"} and all(isinstance(v, int) for v in args.values())
    calls, content, finish = _stream_calls(client, **kw)
    assert finish == "tool_calls" and content == ""
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [
        ("add", call.function.arguments)
    ]
    assert calls[0]["id"].startswith("call_")


def test_required_without_parallel_calls_makes_exactly_one(client: openai.OpenAI) -> None:
    for seed in range(4):
        out = client.chat.completions.create(
            model="citer", messages=ASK, tools=[ADD, NOW], tool_choice="required",
            parallel_tool_calls=False, max_tokens=100, temperature=1.0, seed=seed,
        )  # fmt: skip
        calls = out.choices[0].message.tool_calls
        assert len(calls) == 1 and calls[0].function.name in ("add", "now")
        json.loads(calls[0].function.arguments)


def test_auto_lets_the_model_answer_in_text(client: openai.OpenAI) -> None:
    """The demo models were never taught tools: under auto they answer in text."""
    out = client.chat.completions.create(
        model="citer", messages=ASK, tools=[ADD], max_tokens=24, temperature=0
    )
    assert out.choices[0].message.content and out.choices[0].message.tool_calls is None


def test_auto_with_a_json_response_format_is_a_call_or_that_json(client: openai.OpenAI) -> None:
    strict = {**ADD, "function": {**ADD["function"], "strict": True}}  # parse() wants it
    for seed in range(3):
        out = client.chat.completions.parse(
            model="citer", messages=ASK, tools=[strict], response_format=Answer, max_tokens=100,
            temperature=1.0, seed=seed,
        )  # fmt: skip
        msg = out.choices[0].message
        if msg.tool_calls:
            assert out.choices[0].finish_reason == "tool_calls" and msg.content is None
            assert set(json.loads(msg.tool_calls[0].function.arguments)) == {"a", "b"}
        else:
            assert isinstance(msg.parsed, Answer)


def test_concurrent_sampled_structured_requests_all_validate(client: openai.OpenAI) -> None:
    """Sampled at temperature 1, concurrently, every policy: each answer parses."""

    def one(i: int) -> Answer | None:
        out = client.chat.completions.parse(
            model=MODELS[i % 3], messages=[{"role": "user", "content": f"What is {i} + 7?"}],
            response_format=Answer, max_tokens=40, temperature=1.0, seed=i,
        )  # fmt: skip
        assert out.choices[0].finish_reason == "stop"
        return out.choices[0].message.parsed

    with ThreadPoolExecutor(8) as pool:
        parsed = list(pool.map(one, range(48)))
    assert all(isinstance(p, Answer) for p in parsed)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [ADD], "tool_choice": {"type": "function", "function": {"name": "x"}}},
         "tool_choice"),
        ({"tools": [ADD, ADD]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]},
         "tools.0.function.name"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {
            "type": "object", "properties": {"x": {"type": "string", "pattern": "(?=a)"}}}}}},
         "response_format.json_schema.schema"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"functions": [ADD["function"]]}, "functions"),
    ],
)  # fmt: skip
def test_bad_structured_requests_are_refused_naming_the_field(
    gateway, key: str, extra: dict, param: str
) -> None:
    body = {"model": "citer", "messages": ASK, "max_tokens": 4, **extra}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body,
                   headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


class AddArgs(BaseModel):
    a: int = Field(ge=-99999, le=99999)
    b: int = Field(ge=-99999, le=99999)


def test_langchain_structured_output_and_a_two_turn_tool_loop(gateway, key: str) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool(args_schema=AddArgs)
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    llm = ChatOpenAI(model="citer", base_url=gateway.url + "/v1", api_key=key,
                     temperature=0, max_tokens=100, max_retries=0)  # fmt: skip
    assert isinstance(llm.with_structured_output(Answer).invoke("What is 12 + 30?"), Answer)
    msgs = [HumanMessage("What is 12 + 30?")]
    # strict: the arguments' schema gets additionalProperties false, so a model that
    # never learnt tools cannot wander off into extra keys
    ai = llm.bind_tools([add], tool_choice="add", strict=True).invoke(msgs)
    (call,) = ai.tool_calls
    assert call["name"] == "add" and set(call["args"]) == {"a", "b"}
    result = add.invoke(call)  # a ToolMessage answering that call id
    assert result.tool_call_id == call["id"]
    final = llm.bind_tools([add]).invoke([*msgs, ai, result])
    assert isinstance(final.content, str) and final.content and not final.tool_calls
