"""Task items and their JSONL form.

One item is a chat prompt with a step-by-step reference answer that ends in the
answer line ``The answer is X.``; ``answer`` is X, checked by the item's verifier
(``tasks.verify``: answer-line by default, number, choice).
JSONL schema (one object per line, extra keys ignored):
``{"messages": [{"role", "content"}...], "reference": str, "answer": str, "family": str,
"verifier"?: str}``; public benchmark files (GSM8K, CommonsenseQA) are read by
``tasks.public``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tasks.verify import VERIFIERS

ROLES = ("system", "user", "assistant")


class TaskDataError(ValueError):
    """Malformed task data; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    messages: list[dict[str, str]]  # the prompt: system/user turns, no final assistant turn
    reference: str  # worked answer ending in "The answer is X."
    answer: str  # X, the exact final answer
    family: str
    id: str = ""
    meta: dict[str, object] = field(default_factory=dict)
    verifier: str = "answer-line"  # how ``answer`` is checked (tasks.verify.VERIFIERS)

    @property
    def prompt_text(self) -> str:
        return "\n".join(m["content"] for m in self.messages)

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        if not d["meta"]:
            del d["meta"]
        if d["verifier"] == "answer-line":
            del d["verifier"]
        return d


def _parse(obj: object, where: str) -> Item:
    if not isinstance(obj, dict):
        raise TaskDataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("messages", "reference", "answer", "family"):
        if key not in obj:
            raise TaskDataError(f"{where}: missing field '{key}'")
    msgs = obj["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise TaskDataError(f"{where}: 'messages' must be a non-empty list")
    for m in msgs:
        if (
            not isinstance(m, dict)
            or m.get("role") not in ROLES
            or not isinstance(m.get("content"), str)
        ):
            raise TaskDataError(
                f"{where}: each message needs role in {ROLES} and a string content, got {m!r}"
            )
    for key in ("reference", "answer", "family"):
        if not isinstance(obj[key], str):
            raise TaskDataError(f"{where}: '{key}' must be a string")
    verifier = obj.get("verifier", "answer-line")
    if verifier not in VERIFIERS:
        raise TaskDataError(f"{where}: 'verifier' must be one of {', '.join(VERIFIERS)}")
    return Item(
        messages=[{"role": m["role"], "content": m["content"]} for m in msgs],
        reference=obj["reference"],
        answer=obj["answer"],
        family=obj["family"],
        id=str(obj.get("id", "")),
        meta=dict(obj.get("meta", {}) or {}),
        verifier=verifier,
    )


def read_jsonl(path: str | Path) -> list[Item]:
    """Load items; a malformed line raises TaskDataError naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise TaskDataError(f"{p}: no such file")
    items: list[Item] = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskDataError(f"{p}:{n}: invalid JSON ({e.msg})") from None
            item = _parse(obj, f"{p}:{n}")
            items.append(item if item.id else _with_id(item, f"{p.stem}-{n}"))
    return items


def write_jsonl(items: Iterable[Item], path: str | Path) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def _with_id(item: Item, new_id: str) -> Item:
    return replace(item, id=new_id)
