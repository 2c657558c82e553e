"""Grammar masks on a batch of next-token logits (torch side of ``engines.grammar``).

    mask_logits(logits [B, vocab], grammars (None = free row), eos_ids) -> forced [B]

Disallowed tokens get -inf in place, before sampling, log-probs and router features
are taken from the logits: every consumer sees the distribution the token is drawn
from. ``forced[i]``: exactly one token is allowed at row i (the grammar writes it,
whatever the model thinks), so the scheduler never sends that position to the LLM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from engines.grammar import SeqGrammar

_BITS = torch.arange(32, dtype=torch.int32)  # bit b of a word <-> token 32 * word + b


def allowed_tokens(grammars: Sequence[SeqGrammar], vocab: int) -> torch.Tensor:
    """Bool [m, vocab] CPU: token t allowed at row i (ids past the tokenizer: never)."""
    words = grammars[0].words
    bits = torch.zeros(len(grammars), words, dtype=torch.int32)  # [m, words]
    for r, g in enumerate(grammars):
        g.fill(bits[r].data_ptr(), words * 4)
    allowed = ((bits[:, :, None] >> _BITS) & 1).bool().reshape(len(grammars), words * 32)
    if allowed.shape[1] >= vocab:
        return allowed[:, :vocab]
    pad = torch.zeros(len(grammars), vocab - allowed.shape[1], dtype=torch.bool)
    return torch.cat([allowed, pad], dim=1)


def mask_logits(
    logits: torch.Tensor, grammars: Sequence[SeqGrammar | None], eos_ids: Iterable[int]
) -> list[bool]:
    """Mask the constrained rows of ``logits`` [B, vocab] in place; the forced rows."""
    rows = [i for i, g in enumerate(grammars) if g is not None]
    forced = [False] * len(grammars)
    if not rows:
        return forced
    vocab = logits.shape[1]
    allowed = allowed_tokens([grammars[i] for i in rows], vocab)  # type: ignore[misc]
    empty = ~allowed.any(dim=1)  # a grammar that allows nothing (error state): let it end
    if empty.any():
        eos = torch.tensor([t for t in eos_ids if t < vocab], dtype=torch.long)
        allowed[empty.nonzero()[:, 0][:, None], eos[None, :]] = True
    idx = torch.tensor(rows, device=logits.device)
    sub = logits[idx].masked_fill_(~allowed.to(logits.device), float("-inf"))
    logits[idx] = sub
    for r, n in zip(rows, allowed.sum(dim=1).tolist(), strict=True):
        forced[r] = n == 1
    return forced
