"""Hostile request bodies: each must be refused with 400 in OpenAI's error shape,
before any budget is reserved (the hostile-input tests and ``make soak`` send them).

Rows: (path, raw JSON text, the field the error must name or None). Raw text, since
several are not JSON a client library would write (NaN, lone surrogates, 5,000
nested arrays).
"""

from __future__ import annotations

import json

MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "citer", "messages": MSG, "max_tokens": 4}
TEXT = {"model": "citer", "prompt": "hi", "max_tokens": 4}

C, T = "/v1/chat/completions", "/v1/completions"
TOOL = [{"type": "function", "function": {"name": "f"}}]
IMAGE = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]


def chat(**kw: object) -> str:
    return json.dumps({**CHAT, **kw})


def raw(base: dict, tail: str) -> str:
    """``base`` as JSON with ``tail`` (raw JSON text, e.g. a NaN) as its last member."""
    return json.dumps(base)[:-1] + "," + tail + "}"


# (path, raw body, param named in the error or None)
REFUSED = [
    (C, '{"model":"citer","messages":' + "[" * 5000 + "]" * 5000 + "}", None),
    (C, '{"model":"\\ud800","messages":[{"role":"user","content":"hi"}]}', None),
    (T, '{"model":"citer","prompt":"a\\udfffb","max_tokens":2}', None),
    (C, raw(CHAT, '"routing":{"threshold":Infinity}'), None),
    (C, raw(CHAT, '"temperature":NaN'), None),
    (T, raw(TEXT, '"top_p":1e999'), None),
    (C, chat(tool_choice="required"), "tool_choice"),
    (
        C,
        chat(tools=TOOL, tool_choice={"type": "function", "function": {"name": "g"}}),
        "tool_choice",
    ),
    (
        C,
        chat(
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "minProperties": "x"},
                    },
                }
            ],
            tool_choice="required",
        ),
        "tools.0.function.parameters",
    ),
    (C, chat(response_format={"type": "nonsense"}), "response_format.type"),
    (
        C,
        chat(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "a",
                    "schema": {"type": "string", "pattern": "(?=lookahead)"},
                },
            }
        ),
        "response_format.json_schema.schema",
    ),
    (C, chat(functions=[TOOL[0]["function"]]), "functions"),
    (C, chat(logit_bias={"5": 10}), "logit_bias"),
    (T, json.dumps({**TEXT, "suffix": "x"}), "suffix"),
    (C, chat(presence_penalty=0.5), "presence_penalty"),
    (C, chat(frequency_penalty=1), "frequency_penalty"),
    (C, chat(max_tokens="64"), "max_tokens"),
    (C, chat(max_tokens=True), "max_tokens"),
    (C, chat(logprobs="yes"), "logprobs"),
    (C, chat(stream="yes"), "stream"),
    (T, json.dumps({**TEXT, "prompt": [True, False]}), "prompt"),
    (C, chat(stop=["x"] * 1000), "stop"),
    (C, chat(stop="y" * 200_000), "stop"),
    (C, chat(temperature="1"), "temperature"),
    (C, chat(frobnicate=1), "frobnicate"),
    (C, chat(messages=IMAGE), "messages.0.content"),
]
