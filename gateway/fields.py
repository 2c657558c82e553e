"""Request-field rules shared by the OpenAI endpoints: strict types, bounded stops,
and OpenAI fields this gateway does not implement.

Every request model is ``Strict``: unknown fields are refused (400
``unsupported_parameter`` naming the field), JSON types are not coerced (no
``true`` for 1, no ``"64"`` for 64; an integer is a valid float) and floats are
finite. OpenAI fields that the gateway does not implement are accepted only with
their neutral value (``presence_penalty: 0``, ``tools: []``, ``response_format:
{"type": "text"}``, ...), so clients that always send the defaults keep working,
and refused otherwise: a request never silently loses what it asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.errors import bad_request

MAX_STOPS = 4  # stop sequences per request, as OpenAI allows
MAX_STOP_CHARS = 256  # characters per stop sequence (checked on every token)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


StopText = Annotated[str, StringConstraints(max_length=MAX_STOP_CHARS)]
Stop = StopText | Annotated[list[StopText], Field(max_length=MAX_STOPS)] | None

# field -> (is its value neutral, the neutral value as documented); None always is.
Neutral = tuple[Callable[[Any], bool], str]
NOT_IMPLEMENTED: dict[str, Neutral] = {
    "frequency_penalty": (lambda v: v == 0, "0"),
    "presence_penalty": (lambda v: v == 0, "0"),
    "logit_bias": (lambda v: not v, "{}"),
    "tools": (lambda v: not v, "[]"),
    "tool_choice": (lambda v: v == "none", '"none"'),
    "functions": (lambda v: not v, "[]"),
    "function_call": (lambda v: v == "none", '"none"'),
    "parallel_tool_calls": (lambda v: True, "any (no tools are served)"),
    "response_format": (lambda v: v == {"type": "text"}, '{"type": "text"}'),
    "suffix": (lambda v: not v, '""'),
    "store": (lambda v: v is False, "false"),
    "metadata": (lambda v: not v, "{}"),
    "service_tier": (lambda v: v in ("auto", "default"), '"auto"'),
}


class NotImplementedFields(Strict):
    """OpenAI fields that are refused unless neutral (see ``NOT_IMPLEMENTED``); an
    endpoint that implements some lists them in ``implemented`` and types them itself."""

    implemented: ClassVar[frozenset[str]] = frozenset()

    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    suffix: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None

    def refuse_unimplemented(self) -> None:
        """400 naming the first field set to a value this gateway cannot honour."""
        for name in sorted((self.model_fields_set & NOT_IMPLEMENTED.keys()) - self.implemented):
            value = getattr(self, name)
            neutral, shown = NOT_IMPLEMENTED[name]
            if value is not None and not neutral(value):
                raise bad_request(
                    f"{name} is not implemented by this gateway: omit it or send {shown}.",
                    name,
                    "unsupported_parameter",
                )


def stop_list(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    return tuple(s for s in stops if s)
