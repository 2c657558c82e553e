"""Turn task items into training tensors: chat-formatted, loss on the answer only."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch

from tasks.chat import Encoded, encode_item

IGNORE = -100  # label of positions that carry no loss (prompt, padding)
__all__ = ["IGNORE", "Encoded", "batches", "encode_item"]


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
