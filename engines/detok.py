"""Incremental detokenization of one completion, with stop strings held back.

Text is released as soon as it is final: complete characters (a token that
ends inside a UTF-8 sequence decodes to U+FFFD and waits for the next one),
minus the longest tail that could still grow into a stop string. When a stop
string appears, everything from its first character on is dropped, so a stop
string is never released, even when it is split across tokens.
"""

from __future__ import annotations

from typing import Any


class Detokenizer:
    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self.tok = tokenizer  # any HF tokenizer: only .decode is used
        self.stop = stop
        self.ids: list[int] = []
        self._prefix = 0  # ids[_prefix:_read] is re-decoded as context for the next token
        self._read = 0
        self.text = ""  # decoded text so far (complete characters)
        self.released = 0  # chars of self.text already released

    def _decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> tuple[str, bool]:
        """Append a token; return (text it releases, whether a stop string appeared)."""
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(self.ids)
        hit = self._first_stop()
        if hit is not None:
            out = self.text[self.released : hit]
            self.text = self.text[:hit]
            self.released = hit
            return out, True
        end = len(self.text) - self._hold()
        out = self.text[self.released : end]
        self.released = max(self.released, end)
        return out, False

    def flush(self) -> str:
        """Release the held-back tail (the answer ended without a stop string)."""
        out = self.text[self.released :]
        self.released = len(self.text)
        return out

    def _first_stop(self) -> int | None:
        """Index in self.text of the earliest stop string, or None.

        Released text never contains the start of a stop string (it is held
        back), so searching the unreleased tail is enough.
        """
        found = [i for s in self.stop if (i := self.text.find(s, self.released)) >= 0]
        return min(found) if found else None

    def _hold(self) -> int:
        """Length of the longest unreleased tail that is a proper prefix of a stop string."""
        tail = self.text[self.released :]
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(tail)), best, -1):
                if tail.endswith(s[:n]):
                    best = n
                    break
        return best
