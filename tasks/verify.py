"""Exact verification of final answers, one verifier per kind of answer.

    answer-line  (the demo tasks) X of the last ``The answer is X.`` line, compared
                 after normalisation (whitespace collapsed, case-folded, a trailing
                 period dropped, list separators unified to ", ")
    number       (GSM8K) the final number: the first of the last "The answer is" line,
                 else of the last ``\\boxed{}``, else the last number in the text;
                 commas, "$" and a trailing ".0" ignored; equal as decimals
    choice       (CommonsenseQA) the final letter A-E: of the last "answer is" phrase
                 ("(C)", "C", "C)"), else the last "(C)", else a reply that is one letter

An item names its verifier (``tasks.types.Item.verifier``); malformed text is wrong.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

ANSWER_RE = re.compile(r"The answer is\s+(.+?)\s*\.?\s*$", re.MULTILINE)
VERIFIERS = ("answer-line", "number", "choice")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_LETTER_AFTER = re.compile(r"(?i:answer is)[:\s]*\(?\b([A-E])\b\)?")  # not "is a bank"
_PAREN_LETTER = re.compile(r"\(([A-Ea-e])\)")


def extract_answer(text: str) -> str | None:
    """The X of the last 'The answer is X.' line, or None when there is none."""
    found = ANSWER_RE.findall(text)
    return found[-1].strip() if found else None


def normalize(ans: str) -> str:
    s = " ".join(ans.strip().split()).rstrip(".").strip().casefold()
    return re.sub(r"\s*,\s*", ", ", s)


def final_number(text: str) -> Decimal | None:
    """The first number of the answer line, else of the last box, else the last number."""
    line, boxes = extract_answer(text), _BOXED.findall(text)
    for source, pick in ((line, 0), (boxes[-1] if boxes else None, 0), (text, -1)):
        nums = _NUMBER.findall(source) if source is not None else []
        if nums:
            try:
                return Decimal(nums[pick].replace(",", "").replace("$", ""))
            except InvalidOperation:
                return None
    return None


def final_choice(text: str) -> str | None:
    found = _LETTER_AFTER.findall(text) or _PAREN_LETTER.findall(text)
    if found:
        return found[-1].upper()
    bare = text.strip().rstrip(".").strip("()")
    return bare if re.fullmatch(r"[A-E]", bare) else None


def is_correct(text: str, answer: str, verifier: str = "answer-line") -> bool:
    """True iff ``text`` states ``answer`` as its final answer (malformed -> False)."""
    if verifier == "number":
        got = final_number(text)
        try:
            return got is not None and got == Decimal(answer.replace(",", ""))
        except InvalidOperation:
            return False
    if verifier == "choice":
        return final_choice(text) == answer.strip().upper()
    if verifier != "answer-line":
        raise ValueError(f"verifier {verifier!r}: known {', '.join(VERIFIERS)}")
    got = extract_answer(text)
    return got is not None and normalize(got) == normalize(answer)
