"""The reference decoder: one model alone through ``transformers`` ``generate``.

Evaluation checks the collaborative decoder against it, and the demo builder uses
it to validate models while training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.chat import chat_ids
from tasks.evaluate import MAX_NEW_TOKENS, Generation
from tasks.types import Item


class HFGenerateDecoder:
    """Greedy decoding of one model with ``transformers`` ``generate`` (reference path)."""

    def __init__(
        self, path: str, batch_size: int = 32, device: str = "cpu",
        max_new_tokens: int = MAX_NEW_TOKENS,
    ) -> None:  # fmt: skip
        self.max_new_tokens = max_new_tokens
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from engines.modelcheck import check_model_folder

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

    def __call__(self, items: Sequence[Item]) -> list[Generation]:
        import torch

        prompts = [chat_ids(self.tok, it.messages) for it in items]
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
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    eos_token_id=eos,
                    pad_token_id=pad,
                )
            for r, i in enumerate(idx):
                toks = gen[r, width:].tolist()
                toks = toks[: toks.index(eos)] if eos in toks else toks
                out[i] = Generation(self.tok.decode(toks), toks)
        return [out[i] for i in range(len(items))]
