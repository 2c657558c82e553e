"""Decode a task split and score it.

    items --decoder--> Generation per item --tasks.verify--> EvalReport

A decoder is any callable ``(items) -> list[Generation]``: the single-model
reference decoder below (HF ``generate``), or the collaborative scheduler.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.types import Item
from tasks.verify import is_correct

MAX_NEW_TOKENS = 320  # longest demo test reference is ~250 tokens


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    sources: list[str] = field(default_factory=list)  # "slm" / "llm" per token, if routed
    scores: list[float] = field(default_factory=list)  # router score per token, if routed


Decoder = Callable[[Sequence[Item]], list[Generation]]


@dataclass
class EvalReport:
    n: int
    accuracy: float
    per_family: dict[str, float]
    tokens: int  # completion tokens generated (eos excluded)
    tokens_per_s: float
    wall_s: float
    correct: list[bool] = field(repr=False, default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)  # routing stats, timings

    def to_json(self) -> dict[str, object]:
        d: dict[str, object] = {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "per_family": {k: round(v, 4) for k, v in self.per_family.items()},
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "wall_s": round(self.wall_s, 2),
        }
        d.update(self.extra)
        return d


def evaluate(items: Sequence[Item], decoder: Decoder) -> tuple[EvalReport, list[Generation]]:
    t0 = time.perf_counter()
    gens = decoder(items)
    wall = time.perf_counter() - t0
    correct = [is_correct(g.text, it.answer) for g, it in zip(gens, items, strict=True)]
    by_fam: dict[str, list[bool]] = defaultdict(list)
    for it, ok in zip(items, correct, strict=True):
        by_fam[it.family].append(ok)
    tokens = sum(len(g.token_ids) for g in gens)
    report = EvalReport(
        n=len(items),
        accuracy=sum(correct) / max(1, len(items)),
        per_family={f: sum(v) / len(v) for f, v in sorted(by_fam.items())},
        tokens=tokens,
        tokens_per_s=tokens / wall if wall > 0 else 0.0,
        wall_s=wall,
        correct=correct,
    )
    return report, gens


class HFGenerateDecoder:
    """Greedy decoding of one model with ``transformers`` ``generate`` (reference path)."""

    def __init__(self, path: str, batch_size: int = 32, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from citer.modelcheck import check_model_folder

        check_model_folder(path)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
        self._setup(model, tok, batch_size, device)

    @classmethod
    def from_model(cls, model: Any, tok: Any, batch_size: int = 32) -> HFGenerateDecoder:
        """Decode with a model already in memory (validation during training)."""
        self = cls.__new__(cls)
        self._setup(model, tok, batch_size, str(next(model.parameters()).device))
        return self

    def _setup(self, model: Any, tok: Any, batch_size: int, device: str) -> None:
        self.tok = tok
        self.tok.padding_side = "left"
        self.model = model.eval()
        self.batch_size = batch_size
        self.device = device

    def prompt_ids(self, item: Item) -> list[int]:
        out = self.tok.apply_chat_template(item.messages, add_generation_prompt=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    def __call__(self, items: Sequence[Item]) -> list[Generation]:
        import torch

        prompts = [self.prompt_ids(it) for it in items]
        order = sorted(range(len(items)), key=lambda i: len(prompts[i]))
        out: dict[int, Generation] = {}
        eos, pad = self.tok.eos_token_id, self.tok.pad_token_id
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):  # left padding
                ids[r, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[r, width - len(prompts[i]) :] = 1
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    max_new_tokens=MAX_NEW_TOKENS,
                    do_sample=False,
                    eos_token_id=eos,
                    pad_token_id=pad,
                )
            for r, i in enumerate(idx):
                toks = gen[r, width:].tolist()
                toks = toks[: toks.index(eos)] if eos in toks else toks
                out[i] = Generation(self.tok.decode(toks), toks)
        return [out[i] for i in range(len(items))]
