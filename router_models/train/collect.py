"""Teacher-forced collection: one row per reference-answer position, both models.

    items --tasks.chat.encode_item--> prompt + reference + eos token ids
      --SLM engine.step(probe_offsets = answer positions)--> hidden, logits per row
      --LLM engine.step(same)--> argmax per row
      --> Collection (saved under the cache folder, reused when the key matches)

Row r describes the prediction of answer token ``t[r]`` of item ``item[r]``
given the prompt and the reference answer before it: the SLM's final hidden
state there (the CITER router input), its top-k log-probs and normalised
entropy (for baselines and feature ablations), both models' argmax, and the
reference token. Sequences go through the engine in batches, exactly as the
scheduler feeds it, so the features match what the router sees when serving.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from engines.types import SamplingParams, SeqWork
from tasks.chat import encode_item
from tasks.types import Item

FORMAT = 2  # bump when the saved layout changes: old caches are then ignored
_SEQ_BASE = 1 << 40  # engine cache ids of collection sequences (never a scheduler's)
# Prompt + answer tokens per teacher-forced batch (a bound on its answer rows): each engine
# returns [rows, vocab] logits, so on a 152k vocabulary 4096 rows are ~1.2 GB of bf16 per
# engine (32 answers of 320 tokens were ~24 GB with the float32 features and ran a 24 GiB
# host out of memory).
MAX_TOKENS = 4096
_FEATURE_ROWS = 1024  # rows per float32 log-softmax chunk (~0.6 GB on a 152k vocabulary)
_TENSORS = ("item", "t", "ref", "slm", "llm", "hidden", "topk", "entropy")


@dataclass
class Collection:
    """Rows of one split; per-item lists are indexed by ``item[r]``."""

    item_ids: list[str]
    answers: list[str]  # gold final answer per item (what the verifier compares)
    verifiers: list[str]  # tasks.verify verifier per item
    prompt_ids: list[list[int]]  # chat prompt tokens per item
    answer_ids: list[list[int]]  # reference answer tokens per item, eos included
    item: torch.Tensor  # [N] int64 index into the per-item lists
    t: torch.Tensor  # [N] int64 offset of the predicted token in answer_ids
    ref: torch.Tensor  # [N] int64 reference token
    slm: torch.Tensor  # [N] int64 SLM argmax
    llm: torch.Tensor  # [N] int64 LLM argmax
    hidden: torch.Tensor  # [N, H] float32 SLM final hidden state (after final norm)
    topk: torch.Tensor  # [N, K] float32 SLM top-k log-probs, descending
    entropy: torch.Tensor  # [N] float32 SLM entropy / log(vocab), in [0, 1]
    meta: dict[str, Any] = field(default_factory=dict)
    token_classes: torch.Tensor | None = None  # [vocab] class per id, for token:class inputs

    def __len__(self) -> int:
        return int(self.ref.shape[0])

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def inputs(self, features: Sequence[str]) -> torch.Tensor:
        """Router inputs [N, sum of widths] in the card's feature order (as served).

        ``token:class`` is the class of the SLM's argmax (the greedy draft), read from
        ``token_classes``, which the trainer sets (not cached with the collection).
        """
        from router_models.base import FEATURE_HIDDEN, FEATURE_TOKEN_CLASS, FEATURE_TOPK, TOPK
        from router_models.token_class import one_hot

        cols = {FEATURE_HIDDEN: self.hidden, FEATURE_TOPK: self.topk[:, :TOPK]}
        if FEATURE_TOKEN_CLASS in features:
            if self.token_classes is None:
                raise ValueError(f"{FEATURE_TOKEN_CLASS!r} inputs need the token class table")
            cols[FEATURE_TOKEN_CLASS] = one_hot(self.token_classes, self.slm)
        unknown = [f for f in features if f not in cols]
        if unknown or not features:
            raise ValueError(f"collections hold router features {list(cols)}, not {unknown}")
        if FEATURE_TOPK in features and self.topk.shape[1] < TOPK:
            raise ValueError(f"collection has top-{self.topk.shape[1]} log-probs, need {TOPK}")
        return torch.cat([cols[f] for f in features], dim=-1)

    def first_rows(self) -> torch.Tensor:
        """Row index of answer position 0 of every item; [n_items] (prompt-only features)."""
        rows = torch.full((self.n_items,), -1, dtype=torch.long)
        first = (self.t == 0).nonzero().squeeze(-1)
        rows[self.item[first]] = first
        return rows


def encode(tokenizer: Any, item: Item) -> tuple[list[int], list[int]]:
    """(prompt ids, reference answer ids ending in eos)."""
    ids, n_prompt = encode_item(tokenizer, item)
    return ids[:n_prompt], ids[n_prompt:]


def _probe(engine: Any, seqs: list[list[int]], n_prompt: list[int]) -> Any:
    """One batched teacher-forced step; RouterFeatures with a row per answer position."""
    sp = SamplingParams(max_tokens=1)
    work = [
        SeqWork(
            _SEQ_BASE + k,
            0,
            ids[:-1],  # the last answer token (eos) is predicted, never fed
            sp,
            seed=0,
            probe_offsets=tuple(range(n - 1, len(ids) - 1)),  # row o predicts ids[o + 1]
        )
        for k, (ids, n) in enumerate(zip(seqs, n_prompt, strict=True))
    ]
    try:
        return engine.step(work).probes
    finally:
        for w in work:
            engine.free(w.seq_id)


def batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Item indices by ascending ``lengths`` (prompt + answer tokens, a bound on its answer
    rows; similar lengths together: little padding), cut at ``batch_size`` items or
    ``max_tokens`` tokens (an item longer than that goes alone)."""
    out: list[list[int]] = []
    tokens = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if out and len(out[-1]) < batch_size and tokens + lengths[i] <= max_tokens:
            out[-1].append(i)
            tokens += lengths[i]
        else:
            out.append([i])
            tokens = lengths[i]
    return out


def _features(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-k log-probs [m, k], entropy / log(vocab) [m]) in float32, a chunk at a time."""
    vocab = logits.shape[-1]
    topk, ent = [], []
    for s in range(0, logits.shape[0], _FEATURE_ROWS):
        logp = torch.log_softmax(logits[s : s + _FEATURE_ROWS].float(), dim=-1)
        topk.append(logp.topk(min(top_k, vocab), dim=-1).values.cpu())
        ent.append((-(logp.exp() * logp).sum(-1) / math.log(vocab)).clamp(0.0, 1.0).cpu())
    return torch.cat(topk), torch.cat(ent)


def collect(
    slm: Any,
    llm: Any,
    tokenizer: Any,
    items: Sequence[Item],
    *,
    batch_size: int = 32,
    max_tokens: int = MAX_TOKENS,
    top_k: int = 8,
    desc: str = "collect",
) -> Collection:
    """Teacher-force both engines along every item's reference answer."""
    if not items:
        raise ValueError("empty collection: no items to teacher-force (check --limit / --data)")
    enc = [encode(tokenizer, it) for it in items]
    parts: dict[int, dict[str, torch.Tensor]] = {}
    with tqdm(total=len(items), desc=desc, unit="item", leave=False) as bar:
        for idx in batches([len(e[0]) + len(e[1]) for e in enc], batch_size, max_tokens):
            seqs = [enc[i][0] + enc[i][1] for i in idx]
            n_prompt = [len(enc[i][0]) for i in idx]
            ps = _probe(slm, seqs, n_prompt)
            topk, ent = _features(ps.logits, top_k)
            slm_ids, hidden = ps.token_ids.cpu(), ps.hidden.float().cpu()
            del ps  # the SLM's [rows, vocab] logits go before the LLM's arrive
            llm_ids = _probe(llm, seqs, n_prompt).token_ids.cpu()
            row = 0
            for i in idx:
                n = len(enc[i][1])  # rows of this item, one per answer token
                sl = slice(row, row + n)
                parts[i] = {
                    "item": torch.full((n,), i, dtype=torch.long),
                    "t": torch.arange(n),
                    "ref": torch.tensor(enc[i][1]),
                    "slm": slm_ids[sl],
                    "llm": llm_ids[sl],
                    "hidden": hidden[sl],
                    "topk": topk[sl],
                    "entropy": ent[sl],
                }
                row += n
            bar.update(len(idx))
    cat = {k: torch.cat([parts[i][k] for i in range(len(items))]) for k in _TENSORS}
    return Collection(
        item_ids=[it.id for it in items],
        answers=[it.answer for it in items],
        verifiers=[it.verifier for it in items],
        prompt_ids=[e[0] for e in enc],
        answer_ids=[e[1] for e in enc],
        meta={"top_k": top_k, "slm": slm.info.name, "llm": llm.info.name},
        **cat,
    )


def cache_key(slm_path: str, llm_path: str, items: Sequence[Item], top_k: int) -> str:
    """Digest of everything a collection depends on: weights, items, feature settings."""
    h = hashlib.sha256(f"format={FORMAT};top_k={top_k}".encode())
    for folder in (slm_path, llm_path):
        for f in sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.json")):
            h.update(f.name.encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    for it in items:
        h.update(json.dumps(it.to_json(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def save_collection(c: Collection, path: str | Path) -> None:
    """``path``.safetensors (row tensors) + ``path``.json (per-item lists, meta)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: getattr(c, k).contiguous() for k in _TENSORS}, str(p) + ".safetensors")
    side = {
        "format": FORMAT,
        "item_ids": c.item_ids,
        "answers": c.answers,
        "verifiers": c.verifiers,
        "prompt_ids": c.prompt_ids,
        "answer_ids": c.answer_ids,
        "meta": c.meta,
    }
    Path(str(p) + ".json").write_text(json.dumps(side), encoding="utf-8")


def load_collection(path: str | Path) -> Collection | None:
    """The saved collection, or None if absent or written in another format."""
    p = Path(path)
    js, st = Path(str(p) + ".json"), Path(str(p) + ".safetensors")
    if not (js.is_file() and st.is_file()):
        return None
    side = json.loads(js.read_text(encoding="utf-8"))
    if side.get("format") != FORMAT:
        return None
    t = load_file(str(st))
    c = Collection(
        side["item_ids"],
        side["answers"],
        side["verifiers"],
        side["prompt_ids"],
        side["answer_ids"],
        meta=side["meta"],
        **{k: t[k] for k in _TENSORS},
    )
    if len(c) == 0:
        raise ValueError(f"empty collection in {st}: delete it and collect again")
    return c


def collect_cached(
    slm: Any,
    llm: Any,
    tokenizer: Any,
    items: Sequence[Item],
    cache_dir: str | Path,
    name: str,
    *,
    batch_size: int = 32,
    top_k: int = 8,
) -> tuple[Collection, bool]:
    """Load ``cache_dir/name-KEY`` if present, else collect and save it; (collection, hit)."""
    if not items:
        raise ValueError(f"empty collection: the {name} split has no items")
    key = cache_key(slm.info.name, llm.info.name, items, top_k)
    path = Path(cache_dir) / f"{name}-{key}"
    hit = load_collection(path)
    if hit is not None:
        return hit, True
    c = collect(slm, llm, tokenizer, items, batch_size=batch_size, top_k=top_k, desc=name)
    c.meta["cache_key"] = key  # round checkpoints are keyed on it (weights included)
    save_collection(c, path)
    return c, False
