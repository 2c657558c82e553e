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

_BITS = torch.arange(32, dtype=torch.int32)  # bit b of word w <-> token 32 * w + b


def bitmasks(grammars: Sequence[SeqGrammar]) -> torch.Tensor:
    """int32 [m, words] CPU: llguidance's allowed-token bits of each row."""
    words = grammars[0].words
    bits = torch.zeros(len(grammars), words, dtype=torch.int32)
    for r, g in enumerate(grammars):
        g.fill(bits[r].data_ptr(), words * 4)
    return bits


def unpack(bits: torch.Tensor, vocab: int) -> torch.Tensor:
    """Bool [m, vocab]: token t allowed at row i (ids past the tokenizer: never)."""
    m, words = bits.shape
    allowed = ((bits[:, :, None] >> _BITS) & 1).bool().reshape(m, words * 32)
    if allowed.shape[1] >= vocab:
        return allowed[:, :vocab]
    return torch.cat([allowed, torch.zeros(m, vocab - allowed.shape[1], dtype=torch.bool)], 1)


def single(bits: torch.Tensor) -> list[bool]:
    """Per row: exactly one bit set (one nonzero word, a power of two)."""
    one_word = (bits != 0).sum(dim=1) == 1
    word = (bits.long() & 0xFFFFFFFF).sum(dim=1)  # unsigned; the one nonzero word if one
    return (one_word & ((word & (word - 1)) == 0)).tolist()


def mask_logits(
    logits: torch.Tensor, grammars: Sequence[SeqGrammar | None], eos_ids: Iterable[int]
) -> list[bool]:
    """Mask the constrained rows of ``logits`` [B, vocab] in place; the forced rows."""
    rows = [i for i, g in enumerate(grammars) if g is not None]
    forced = [False] * len(grammars)
    if not rows:
        return forced
    bits = bitmasks([grammars[i] for i in rows])  # type: ignore[misc]
    empty = (bits == 0).all(dim=1)  # a grammar that allows nothing (error state): let it end
    for r in empty.nonzero()[:, 0].tolist():
        for t in eos_ids:
            if t < bits.shape[1] * 32:
                bits[r, t // 32] |= torch.tensor(1 << (t % 32)).to(torch.int32)
    banned = ~unpack(bits, logits.shape[1]).to(logits.device)
    if len(rows) == len(grammars):
        logits.masked_fill_(banned, float("-inf"))
    else:
        idx = torch.tensor(rows, device=logits.device)
        logits[idx] = logits[idx].masked_fill_(banned, float("-inf"))
    for r, f in zip(rows, single(bits), strict=True):
        forced[r] = f
    return forced
