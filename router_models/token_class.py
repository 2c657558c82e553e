"""The drafted token's class: a router input every engine can give (it needs only the id).

    token id --table[id]--> class (number | word | other) --one-hot--> 3 router inputs

On GSM8K, where the real pair's SLM leaves the LLM's path on a number the final answer
changes about half the time, on a word about a tenth (BENCHMARKS.md "Which divergences
decide a GSM8K answer"), and the SLM's confidence does not tell those apart. The table
maps every id of the card's tokenizer to its class; a card reading ``token:class``
stores it (pinned by the card's tokenizer hash), so serving needs no tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch

CLASSES = ("number", "word", "other")
OTHER = CLASSES.index("other")


def token_class(text: str) -> str:
    """``number`` (digits, maybe with , or .), ``word`` (letters only) or ``other``."""
    s = text.strip()
    if any(c.isdigit() for c in s) and all(c.isdigit() or c in ",." for c in s):
        return "number"
    if s.isalpha():
        return "word"
    return "other"


def class_table(tokenizer: Any, vocab: int) -> torch.Tensor:
    """[vocab] int64 class index of every token id (ids past the tokenizer: other)."""
    n = min(vocab, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    table = torch.full((vocab,), OTHER, dtype=torch.int64)
    table[:n] = torch.tensor([CLASSES.index(token_class(t)) for t in texts], dtype=torch.int64)
    return table


def one_hot(table: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """[n] token ids -> [n, len(CLASSES)] float32 one-hot of their classes."""
    ids = token_ids.to(device="cpu", dtype=torch.int64)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= table.shape[0]):
        raise ValueError(f"token ids outside the class table's {table.shape[0]} ids")
    return torch.nn.functional.one_hot(table[ids], len(CLASSES)).float()
