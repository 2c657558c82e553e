"""``POST /v1/chat/completions`` request shapes (OpenAI's).

Strict (``gateway.fields``): unknown fields and wrong JSON types are refused with
400 naming the field; OpenAI fields that are not implemented here (tools,
response_format, penalties, logit_bias, ...) are refused unless neutral.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gateway.fields import NotImplementedFields, Stop, Strict
from gateway.routing import RoutingBody
from tasks.chat import chat_ids

MAX_MODEL_CHARS = 256  # longest model name (it is echoed in responses and errors)


class TextPart(Strict):
    type: Literal["text"]  # image, audio and file parts are not served
    text: str


class ChatMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    # What the openai SDK sends back with an earlier assistant message: accepted when
    # empty, since the gateway never produces tool calls, refusals or audio.
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, max_length=0)
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

    def completion_limit(self) -> tuple[int | None, str]:
        """(max completion tokens asked, the field that asked)."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"


def chat_prompt(tokenizer: Any, messages: list[ChatMessage]) -> list[int]:
    """Token ids of the conversation through the model's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model has no chat template: use /v1/completions")
    convo = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in messages
    ]
    return chat_ids(tokenizer, convo)
