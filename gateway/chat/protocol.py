"""``POST /v1/chat/completions`` request shapes (OpenAI's).

Strict (``gateway.fields``): unknown fields and wrong JSON types are refused with
400 naming the field; OpenAI fields that are not implemented here (penalties,
logit_bias, the deprecated functions / function_call, ...) are refused unless
neutral. tools, tool_choice, parallel_tool_calls and response_format are served
(``gateway.chat.structured``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from gateway.chat.structured import MAX_TOOLS, ResponseFormat, Tool, ToolChoice
from gateway.chat.tools import render, template_takes_tools, tools_json
from gateway.fields import NotImplementedFields, Stop, Strict
from gateway.routing import RoutingBody
from tasks.chat import chat_ids

MAX_MODEL_CHARS = 256  # longest model name (it is echoed in responses and errors)


class TextPart(Strict):
    type: Literal["text"]  # image, audio and file parts are not served
    text: str


class CalledFunction(Strict):
    name: str = Field(max_length=64)
    arguments: str  # JSON text, as the model wrote it


class ToolCall(Strict):
    id: str = Field(max_length=256)
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, max_length=MAX_TOOLS)  # assistant
    tool_call_id: str | None = Field(None, max_length=256)  # tool: the call it answers
    # What the openai SDK sends back with an earlier assistant message: accepted when
    # empty, since the gateway never produces refusals or audio.
    refusal: str | None = None
    function_call: None = None
    audio: None = None
    annotations: list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(Strict):
    include_usage: bool = False


class ChatCompletionRequest(NotImplementedFields):
    implemented: ClassVar[frozenset[str]] = frozenset(
        {"tools", "tool_choice", "parallel_tool_calls", "response_format"}
    )
    model: str = Field(max_length=MAX_MODEL_CHARS)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)  # deprecated by OpenAI, still honoured
    max_completion_tokens: int | None = Field(None, ge=1)  # wins over max_tokens
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=128)
    stop: Stop = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None
    routing: RoutingBody | None = None  # citer extension, see gateway.routing
    tools: list[Tool] | None = None  # type: ignore[assignment]
    tool_choice: ToolChoice | None = None  # type: ignore[assignment]
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None  # type: ignore[assignment]

    def completion_limit(self) -> tuple[int | None, str]:
        """(max completion tokens asked, the field that asked)."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"


def chat_prompt(
    tokenizer: Any,
    messages: list[ChatMessage],
    tools: list[Tool],
    add_generation_prompt: bool = True,
) -> list[int]:
    """Token ids of the conversation (and the tools shown) through the model's chat
    template; tool calls and results in its own format if it has one."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model has no chat template: use /v1/completions")
    convo = [
        {
            "role": "system" if m.role == "developer" else m.role,
            "content": m.text(),
            "tool_calls": [c.model_dump() for c in m.tool_calls or []],
        }
        for m in messages
    ]
    native = template_takes_tools(tokenizer)
    shown = tools_json(tools) if native and tools else None
    return chat_ids(tokenizer, render(convo, tools, native), add_generation_prompt, tools=shown)
