"""Rollout outcomes kept per row, so a round's rollouts survive a crash and a larger sample.

    <work-dir>/rounds/round<r>-outcomes.jsonl
      {"key": "<policy + rollout settings digest>"}         first line
      {"force": "slm", "row": 812, "ok": false, "slm": 41, "llm": 9, "trunc": false, "dec": true}
      ...                                                     one line per finished rollout

A line is appended (and flushed) as each rollout finishes: an interrupted round resumes
with only its in-flight rollouts lost, and a rerun with a larger ``--max-rollouts`` (whose
sample contains the smaller one) decodes only the new rows. The key covers everything an
outcome depends on: the policy's weights, the rollout settings, the router's inputs and
the collection; a file with another key is started over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Outcome:
    ok: bool  # the verifier's verdict on the answer the rollout finished
    slm_tokens: int = 0  # tokens the rollout's continuation took from each model
    llm_tokens: int = 0
    truncated: bool = False  # the continuation hit its token budget
    decoded: bool = True  # False: the forced token ended the answer, nothing decoded

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "slm": self.slm_tokens, "llm": self.llm_tokens,
                "trunc": self.truncated, "dec": self.decoded}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Outcome:
        return cls(bool(d["ok"]), int(d["slm"]), int(d["llm"]), bool(d["trunc"]), bool(d["dec"]))


def collection_id(coll: Any) -> dict[str, Any]:
    """What identifies a collection's rows: their count, first and last items, its settings."""
    return {"rows": len(coll), "items": coll.item_ids[:3] + coll.item_ids[-3:], "meta": coll.meta}


def model_digest(model: torch.nn.Module) -> str:
    """sha256 over a model's parameter names and bytes (identical weights, identical digest)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def outcome_key(coll: Any, model: torch.nn.Module, threshold: float, settings: Any,
                features: tuple[str, ...]) -> str:  # fmt: skip
    """Digest of what one rollout's outcome depends on (``settings``: a RolloutConfig)."""
    blob = json.dumps(
        {"collection": collection_id(coll), "model": model_digest(model), "threshold": threshold,
         "rollout": asdict(settings), "features": list(features)},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class OutcomeLog:
    """One round's rollout outcomes by (forced model, row), appended to a JSONL file."""

    def __init__(self, path: str | Path, key: str) -> None:
        self.path, self.key = Path(path), key
        self.done: dict[tuple[str, int], Outcome] = {}
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else []
        if lines and _parse(lines[0]).get("key") == key:
            for line in lines[1:]:
                d = _parse(line)
                if {"force", "row", "ok", "slm", "llm", "trunc", "dec"} <= d.keys():
                    self.done[(str(d["force"]), int(d["row"]))] = Outcome.from_json(d)
        # Rewritten whole: a torn last line (a crash mid-write) is dropped, decoded again.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = [json.dumps({"key": key})]
        body += [_line(f, r, o) for (f, r), o in self.done.items()]
        self.path.write_text("\n".join(body) + "\n", encoding="utf-8")

    def get(self, force: str, row: int) -> Outcome | None:
        return self.done.get((force, row))

    def put(self, force: str, row: int, outcome: Outcome) -> None:
        self.done[(force, row)] = outcome
        with self.path.open("a", encoding="utf-8") as f:
            f.write(_line(force, row, outcome) + "\n")

    def __len__(self) -> int:
        return len(self.done)


def round_log(work_dir: str | Path | None, r: int, key: str) -> OutcomeLog | None:
    """Round r's log in a checkpoint directory (None without one: nothing kept)."""
    return (
        None if work_dir is None else OutcomeLog(Path(work_dir) / f"round{r}-outcomes.jsonl", key)
    )


def _line(force: str, row: int, outcome: Outcome) -> str:
    return json.dumps({"force": force, "row": row, **outcome.to_json()})


def _parse(line: str) -> dict[str, Any]:
    try:
        d = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return d if isinstance(d, dict) else {}
