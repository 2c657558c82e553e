"""Conversations as token ids through a model's own chat template (the one place).

    chat_ids(tokenizer, messages)  -> prompt ids ending in the assistant's turn opener
    encode_item(tokenizer, item)   -> (prompt + reference + eos ids, prompt length)

Every caller (the gateway, evaluation, router training, the demo builder) goes
through here, so a prompt is tokenized the same way wherever it is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.types import Item

Encoded = tuple[list[int], int]  # (prompt + answer token ids, prompt length)


def chat_ids(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
) -> list[int]:
    """``tools``: OpenAI tool objects for a template that renders them itself."""
    out = tokenizer.apply_chat_template(
        list(messages), tools=tools, add_generation_prompt=add_generation_prompt
    )
    if hasattr(out, "keys"):  # transformers 5 returns a BatchEncoding
        out = out["input_ids"]
    return list(out)


def encode_item(tokenizer: Any, item: Item) -> Encoded:
    """(token ids of prompt + reference + eos, number of prompt tokens)."""
    prompt = chat_ids(tokenizer, item.messages)
    full_msgs = [*item.messages, {"role": "assistant", "content": item.reference}]
    full = chat_ids(tokenizer, full_msgs, add_generation_prompt=False)
    if full[: len(prompt)] != prompt:
        raise ValueError(f"item {item.id}: prompt tokens are not a prefix of the full chat")
    end = full.index(tokenizer.eos_token_id, len(prompt))  # the assistant's <|end|>
    return full[: end + 1], len(prompt)
