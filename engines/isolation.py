"""Fault isolation for batched engine calls: an exception fails only its own sequences.

    isolate(items, run, restore) -> (ok: [(group, run(group))], failed: [(item, error)])

``run`` is called on the whole batch first. If it raises, ``restore(group)`` undoes
what the call may have left in the engines (caches cropped back to the tokens each
sequence had committed), and each half is run again, down to single items: an item
that fails alone is the culprit and is reported with its exception; every other item
gets its result from a smaller batch. A fault that belongs to one sequence (a
sampling value that overflows, a token the detokenizer rejects) costs about
2 * log2(batch) extra calls in that one step, and never another request's stream.

Tokens do not change: a position draws from the stream (seed, position) whatever
batch it is in (see ``engines.sampling``), so a smaller batch writes the same tokens.
``run`` must leave no side effect outside the engines' caches when it raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def isolate(
    items: Sequence[T],
    run: Callable[[list[T]], R],
    restore: Callable[[list[T]], None],
) -> tuple[list[tuple[list[T], R]], list[tuple[T, Exception]]]:
    """Run ``items`` as one batch, bisecting on failure; groups come back in input order."""
    ok: list[tuple[list[T], R]] = []
    failed: list[tuple[T, Exception]] = []
    todo = [list(items)]  # a stack: the left half is popped (run) first
    while todo:
        group = todo.pop()
        if not group:
            continue
        try:
            ok.append((group, run(group)))
        except Exception as e:
            restore(group)
            if len(group) == 1:
                failed.append((group[0], e))
            else:
                mid = len(group) // 2
                todo += [group[mid:], group[:mid]]
    return ok, failed


def rewind(engine: Any, caches: Iterable[tuple[int, int]]) -> None:
    """Crop each (seq_id, length) cache back after a failed call. Best effort: a cache
    that cannot be cropped fails its sequence's next call (start != cache length)."""
    for seq_id, length in caches:
        try:
            engine.crop(seq_id, length)
        except Exception:
            pass
