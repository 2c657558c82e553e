"""Turn task items into training tensors: chat-formatted, loss on the answer only."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from tasks.types import Item

IGNORE = -100  # label of positions that carry no loss (prompt, padding)
Encoded = tuple[list[int], int]  # (prompt + answer token ids, prompt length)


def encode_item(tok: PreTrainedTokenizerBase, item: Item) -> Encoded:
    """(token ids of prompt + reference + eos, number of prompt tokens)."""
    prompt = _ids(tok.apply_chat_template(item.messages, add_generation_prompt=True))
    full_msgs = [*item.messages, {"role": "assistant", "content": item.reference}]
    full = _ids(tok.apply_chat_template(full_msgs))
    if full[: len(prompt)] != prompt:
        raise ValueError(f"item {item.id}: prompt tokens are not a prefix of the full chat")
    end = full.index(tok.eos_token_id, len(prompt))  # the assistant's <|end|>
    return full[: end + 1], len(prompt)


def _ids(out: object) -> list[int]:
    if hasattr(out, "keys"):
        out = out["input_ids"]  # type: ignore[index]
    return list(out)  # type: ignore[arg-type]


def batches(
    encoded: Sequence[Encoded],
    batch_size: int,
    pad_id: int,
    seed: int,
    bucket: int = 32,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed, right-padded batches in a seeded order.

    Yields (input_ids [B, T], labels [B, T]); labels are IGNORE on prompt and pad.
    """
    rng = random.Random(seed)
    order = list(range(len(encoded)))
    rng.shuffle(order)
    chunk = batch_size * bucket
    groups: list[list[int]] = []
    for s in range(0, len(order), chunk):
        part = sorted(order[s : s + chunk], key=lambda i: len(encoded[i][0]))
        groups += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(groups)
    for g in groups:
        t = max(len(encoded[i][0]) for i in g)
        ids = torch.full((len(g), t), pad_id, dtype=torch.long)
        labels = torch.full((len(g), t), IGNORE, dtype=torch.long)
        for r, i in enumerate(g):
            seq, n_prompt = encoded[i]
            ids[r, : len(seq)] = torch.tensor(seq)
            labels[r, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
        yield ids, labels
