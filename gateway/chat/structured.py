"""Structured output on chat: ``response_format`` and ``tools`` -> one grammar (or none).

    response_format  text                      free text
                     json_object               any JSON object
                     json_schema {schema}      JSON valid against the schema (strict or
                                               not: the grammar enforces it either way)
    tools + tool_choice
      none, or no tools    tools not shown to the model; response_format as above
      auto (the default)   tools shown; free text, tool calls read from it (gateway.chat.
                           tools); with a JSON response_format: calls | that JSON
      required             one or more calls (one if parallel_tool_calls is false)
      {"type": "function", "function": {"name"}}   one call of that function

A call is ``<tool_call>\\n{"name":"f","arguments":{...}}\\n</tool_call>`` (the Hermes /
Qwen format), JSON compact, properties in schema order. Every schema is compiled by
llguidance before admission: one it cannot use is a 400 naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from engines.grammar import json_schema_grammar, lark_grammar
from gateway.errors import bad_request
from gateway.fields import Strict

MAX_TOOLS = 128  # functions per request, as OpenAI allows
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"  # OpenAI's function-name rule
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
COMPACT = {"whitespace_flexible": False}  # x-guidance: no optional whitespace
Literal_ = Callable[[str], str]  # text -> the Lark terminal that writes it


class JsonSchemaFormat(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class Function(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON schema; None: no arguments
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"]
    function: Function


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


@dataclass(frozen=True)
class Structure:
    """What one chat request asks of its output."""

    grammar: str | None  # llguidance grammar of the whole completion; None: free text
    tools: list[Tool]  # the functions shown to the model ([] when tool_choice is none)
    parse_calls: bool  # read tool calls out of the completion
    parallel: bool  # more than one call allowed


def params_schema(f: Function) -> dict[str, Any]:
    """The arguments' schema; a function without parameters takes exactly ``{}``."""
    if f.parameters is not None:
        return f.parameters
    return {"type": "object", "properties": {}, "additionalProperties": False}


def call_schema(f: Function) -> dict[str, Any]:
    """The JSON of one call of ``f``: name first, then the arguments."""
    return {
        "type": "object",
        "properties": {"name": {"const": f.name}, "arguments": params_schema(f)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
        "x-guidance": COMPACT,
    }


def _lark_json(schema: dict[str, Any]) -> str:
    return "%json " + json.dumps({**schema, "x-guidance": COMPACT})


def _calls_lark(funcs: list[Function], parallel: bool, lit: Literal_) -> str:
    one = " | ".join(f"call_{i}" for i in range(len(funcs)))
    lines = ['calls: call ("\\n" call)*' if parallel else "calls: call"]
    lines.append(f'call: {lit(CALL_OPEN)} "\\n" ({one}) "\\n" {lit(CALL_CLOSE)}')
    lines += [f"call_{i}: {_lark_json(call_schema(f))}" for i, f in enumerate(funcs)]
    return "\n".join(lines)


def answer_schema(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None:
        raise bad_request(
            'response_format: type "json_schema" needs a json_schema object.',
            "response_format.json_schema",
        )
    return fmt.json_schema.schema_


def plan_structure(
    fmt: ResponseFormat | None,
    tools: list[Tool] | None,
    choice: ToolChoice | None,
    parallel: bool | None,
    lit: Literal_ = json.dumps,
) -> Structure:
    """The grammar and tool handling of a request (400 on contradictory fields).
    ``lit``: text -> Lark terminal (``engines.grammar.Grammars.literal``)."""
    tools = list(tools or [])
    if len(tools) > MAX_TOOLS:
        raise bad_request(f"tools: at most {MAX_TOOLS} functions per request.", "tools")
    names = [t.function.name for t in tools]
    if len(set(names)) < len(names):
        raise bad_request("tools: function names must be unique.", "tools")
    choice = choice or ("auto" if tools else "none")
    if choice != "none" and not tools:
        raise bad_request("tool_choice needs tools: send tools or omit tool_choice.", "tool_choice")
    answer = answer_schema(fmt)
    par = True if parallel is None else parallel
    if choice == "none":
        grammar = None if answer is None else json_schema_grammar(answer)
        return Structure(grammar, [], False, par)
    funcs = [t.function for t in tools]
    if isinstance(choice, NamedToolChoice):
        named = [f for f in funcs if f.name == choice.function.name]
        if not named:
            raise bad_request(
                f"tool_choice names function {choice.function.name!r}, which is not in tools.",
                "tool_choice",
            )
        return Structure(lark_grammar(f"start: calls\n{_calls_lark(named, False, lit)}"), tools,
                         True, False)  # fmt: skip
    if choice == "required":
        lark = f"start: calls\n{_calls_lark(funcs, par, lit)}"
        return Structure(lark_grammar(lark), tools, True, par)
    if answer is None:  # auto, free text: calls are read from whatever the model writes
        return Structure(None, tools, True, par)
    lark = f"start: calls | answer\n{_calls_lark(funcs, par, lit)}\nanswer: {_lark_json(answer)}"
    return Structure(lark_grammar(lark), tools, True, par)


def check_schemas(grammars: Any, fmt: ResponseFormat | None, tools: list[Tool] | None) -> None:
    """Compile each schema alone, so a 400 names the one llguidance cannot use.
    ``grammars``: the scheduler's ``engines.grammar.Grammars``."""
    answer = answer_schema(fmt)
    todo = [] if answer is None else [("response_format.json_schema.schema", answer)]
    todo += [
        (f"tools.{i}.function.parameters", params_schema(t.function))
        for i, t in enumerate(tools or [])
    ]
    for param, schema in todo:
        why = grammars.check(json_schema_grammar(schema))
        if why:
            raise bad_request(f"{param}: this JSON schema cannot be enforced ({why}).", param)
