"""Exact verification of final answers.

The answer line is the last occurrence of ``The answer is X.``; X is compared
with the item's answer after normalisation (whitespace collapsed, case-folded,
a trailing period dropped, list separators unified to ", ").
"""

from __future__ import annotations

import re

ANSWER_RE = re.compile(r"The answer is\s+(.+?)\s*\.?\s*$", re.MULTILINE)


def extract_answer(text: str) -> str | None:
    """The X of the last 'The answer is X.' line, or None when there is none."""
    found = ANSWER_RE.findall(text)
    return found[-1].strip() if found else None


def normalize(ans: str) -> str:
    s = " ".join(ans.strip().split()).rstrip(".").strip().casefold()
    return re.sub(r"\s*,\s*", ", ", s)


def is_correct(text: str, answer: str) -> bool:
    """True iff ``text`` states ``answer`` as its final answer (malformed -> False)."""
    got = extract_answer(text)
    return got is not None and normalize(got) == normalize(answer)
