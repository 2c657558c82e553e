"""Public benchmarks as task items: GSM8K and CommonsenseQA JSONL (../shared/data).

    read_items(path)  any task file: our item schema (a "messages" field), GSM8K lines
                      ({id, question, solution?, answer}) or CommonsenseQA lines
                      ({id, question, choices [{label, text}], answer, rationale?}),
                      told apart by their fields

The prompts are what a user would send: the question, "think step by step", and
the final-answer line to end with. References (for router training) are the
data's worked solutions with that same final line: GSM8K's calculator notes
``<<48/2=24>>`` and ``\\boxed{}`` removed; CommonsenseQA's rationale with its
"Therefore, the answer is TEXT (c)." turned into "The answer is C.". Test files
carry no references ("" then): they are for evaluation only.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from tasks.types import Item, TaskDataError, read_jsonl

GSM8K_ASK = (
    "Solve the problem step by step. End with a final line of the form "
    '"The answer is N." where N is a number.'
)
CSQA_ASK = (
    "Think it through briefly, then end with a final line of the form "
    '"The answer is X." where X is the letter of the best choice.'
)
_CALC = re.compile(r"<<[^>]*>>")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_THEREFORE = re.compile(r"Therefore, the answer is .*\(([a-eA-E])\)\.?\s*$")


def gsm8k_item(obj: dict[str, Any]) -> Item:
    question, answer = _text(obj, "question"), _text(obj, "answer")
    ref = _answer_line(_CALC.sub("", str(obj.get("solution") or "")).strip())
    msgs = [{"role": "user", "content": f"{question}\n{GSM8K_ASK}"}]
    return Item(msgs, ref, answer, "gsm8k", str(obj.get("id", "")), verifier="number")


def csqa_item(obj: dict[str, Any]) -> Item:
    question, answer = _text(obj, "question"), _text(obj, "answer").upper()
    choices = obj["choices"]
    if not isinstance(choices, list) or not all(
        isinstance(c, dict) and isinstance(c.get("label"), str) and isinstance(c.get("text"), str)
        for c in choices
    ):
        raise ValueError("'choices' must be a list of {label, text}")
    options = "\n".join(f"{c['label']}) {c['text']}" for c in choices)
    ref = str(obj.get("rationale") or "").strip()
    if ref:
        ref = _THEREFORE.sub("", ref).strip()
        ref = f"{ref}\nThe answer is {answer}." if ref else f"The answer is {answer}."
    msgs = [{"role": "user", "content": f"{question}\n{options}\n{CSQA_ASK}"}]
    return Item(msgs, ref, answer, "commonsenseqa", str(obj.get("id", "")), verifier="choice")


def _answer_line(ref: str) -> str:
    """A worked solution whose last line holds ``\\boxed{N}``, ending "The answer is N."."""
    lines = ref.split("\n")
    m = _BOXED.search(lines[-1]) if ref else None
    if m is None:
        return ref
    last = lines[-1].strip()
    if last.startswith(("The answer is", "The final answer is")):
        lines[-1] = f"The answer is {m.group(1)}."
    else:
        lines[-1] = _BOXED.sub(m.group(1), lines[-1])
        lines.append(f"The answer is {m.group(1)}.")
    return "\n".join(lines)


def _text(obj: dict[str, Any], key: str) -> str:
    if not isinstance(obj.get(key), str):
        raise ValueError(f"'{key}' must be a string")
    return obj[key]


def read_items(path: str | Path) -> list[Item]:
    """Items of a task file in any of the three schemas (TaskDataError names the line)."""
    p = Path(path)
    if not p.is_file():
        raise TaskDataError(f"{p}: no such file")
    with p.open(encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        keys = set(json.loads(first)) if first else set()
    except (json.JSONDecodeError, TypeError):
        keys = set()
    if "messages" in keys or not keys >= {"question", "answer"}:
        return read_jsonl(p)
    convert = csqa_item if "choices" in keys else gsm8k_item
    items = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = convert(json.loads(line))
            except (json.JSONDecodeError, KeyError, ValueError, TypeError) as e:
                raise TaskDataError(f"{p}:{n}: not a {convert.__name__[:-5]} line ({e})") from None
            items.append(item if item.id else replace(item, id=f"{p.stem}-{n}"))
    return items
