"""``POST /v1/completions`` request shape (OpenAI's legacy completions).

One prompt per request: a string, a list of token ids, or a one-element list
of either; several prompts are refused with 400 (send one request each).
vLLM's extensions that make the endpoint a token-id LLM for another gateway
(the remote engine): ``return_token_ids`` (choices carry ``prompt_token_ids`` and
``token_ids``), ``return_tokens_as_token_ids`` (log-prob tokens named
``token_id:<id>``) and ``top_k``.

``echo`` returns the prompt before the completion; with ``logprobs`` its tokens' log-probs
too (the first token's is null), as lm-evaluation-harness's loglikelihood tasks read them
(``echo`` + ``logprobs`` + ``max_tokens`` 0 or 1). Which model scores the prompt:
``engines.prompt_scores`` (slm: the SLM; llm: the LLM; citer: the model the router gives
each position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from gateway.chat.protocol import MAX_MODEL_CHARS, StreamOptions
from gateway.fields import NotImplementedFields, Stop
from gateway.routing import RoutingBody

TokenIds = Annotated[list[int], Field(min_length=1)]
Prompt = str | Annotated[list[str], Field(min_length=1)] | TokenIds | list[TokenIds]


class CompletionRequest(NotImplementedFields):
    model: str = Field(max_length=MAX_MODEL_CHARS)
    prompt: Prompt
    max_tokens: int | None = Field(None, ge=0)  # 0: only with echo (score the prompt)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1)  # vLLM's: -1 or 0 = off; >= vocab = off
    n: int = Field(1, ge=1, le=128)
    best_of: int | None = Field(None, ge=1)
    stop: Stop = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(None, ge=0, le=20)  # OpenAI allows 5; vLLM, like here, 20
    echo: bool = False  # the prompt comes back before the completion (its log-probs too)
    user: str | None = None
    routing: RoutingBody | None = None
    return_token_ids: bool = False  # choices[].prompt_token_ids / token_ids (as vLLM)
    return_tokens_as_token_ids: bool = False  # log-prob tokens as "token_id:<id>" (as vLLM)


def prompt_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of the single prompt; ValueError for batches or empty lists."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise ValueError(f"{len(prompt)} prompts given: send one prompt per request")
        prompt = prompt[0]  # type: ignore[assignment]
    if isinstance(prompt, str):
        return list(tokenizer.encode(prompt, add_special_tokens=True))
    return [int(t) for t in prompt]  # type: ignore[union-attr]


@dataclass(frozen=True)
class Echo:
    """What ``echo`` sends back before the completion."""

    text: str  # the prompt as given (token-id prompts: decoded)
    ids: list[int]  # its token ids, as the engines saw them


def echo_text(tokenizer: Any, prompt: Prompt, ids: list[int]) -> str:
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        return str(prompt[0])
    return prompt if isinstance(prompt, str) else str(tokenizer.decode(ids))
