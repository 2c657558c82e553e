"""How one engine pass is cut into forwards: by real tokens (direct forwards pad
nothing) or, for padded batches, by the positions padding would compute."""

from __future__ import annotations


def token_chunks(sizes: list[int], max_tokens: int) -> list[list[int]]:
    """Rows (by index, in order) in forwards of at most ``max_tokens`` real tokens
    (a row longer than that is a forward of its own): a direct forward pads nothing."""
    chunks: list[list[int]] = []
    used = max_tokens
    for i, n in enumerate(sizes):
        if used + n > max_tokens:
            chunks.append([])
            used = 0
        chunks[-1].append(i)
        used += n
    return chunks


MAX_PAD_RATIO = 1.3  # a chunk may compute at most this many padded positions per real one


def plan_chunks(sizes: list[int], max_tokens: int, pad_free: int) -> list[list[int]]:
    """Group rows (by index) into forwards, longest new-token counts first.

    A chunk of B rows costs B x T padded positions (T = its longest row). Rows
    join the current chunk while that stays <= max_tokens and either <= pad_free
    (small batches: one forward beats several) or <= MAX_PAD_RATIO x real rows.
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    chunks: list[list[int]] = []
    real = 0
    for i in order:
        if chunks:
            width = sizes[chunks[-1][0]]
            padded, grown = (len(chunks[-1]) + 1) * width, real + sizes[i]
            if padded <= max_tokens and (padded <= pad_free or padded <= MAX_PAD_RATIO * grown):
                chunks[-1].append(i)
                real = grown
                continue
        chunks.append([i])
        real = sizes[i]
    return chunks
