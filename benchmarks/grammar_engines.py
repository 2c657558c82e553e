"""llguidance vs xgrammar vs outlines-core on this gateway's grammars (why llguidance).

For each engine and each schema the gateway sends (an ``{"answer": int}`` reply, worked
steps then an answer, a tool call): the time from JSON schema to a ready matcher
(compile, no cache), then the mean time to fill one token bitmask and advance by one
token along a valid answer (medians of 5 after a warm-up), and whether the state rolls
back (drafts past a cut).
All JSON compact (no optional whitespace), one CPU thread.

Only llguidance is a dependency of citer; the others are measured where installed
(``pip install xgrammar outlines-core`` in a scratch environment: xgrammar pulls torch
and triton). Run: ``python -m benchmarks.grammar_engines [--tokenizer DIR]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

ANSWER = {"type": "object", "properties": {"answer": {"type": "integer"}},
          "required": ["answer"], "additionalProperties": False}  # fmt: skip
STEPS = {"type": "object", "properties": {
    "steps": {"type": "array", "items": {"type": "string"}}, "answer": {"type": "integer"}},
    "required": ["steps", "answer"], "additionalProperties": False}  # fmt: skip
CALL = {"type": "object", "properties": {"name": {"const": "add"}, "arguments": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"], "additionalProperties": False}},
    "required": ["name", "arguments"], "additionalProperties": False}  # fmt: skip
REPS = 5
CASES = {
    "answer": (ANSWER, '{"answer":42}'),
    "steps": (
        STEPS,
        '{"steps":["Line up the digits: 12 and 30.","2 + 0 = 2, write 2.",'
        '"1 + 3 = 4, write 4."],"answer":42}',
    ),
    "tool call": (CALL, '{"name":"add","arguments":{"a":12,"b":30}}'),
}


class Llguidance:
    name = "llguidance"

    def __init__(self, tok: Any, vocab: int) -> None:
        import llguidance.hf

        self.lt = llguidance.hf.from_tokenizer(tok, n_vocab=vocab)

    def compile(self, schema: dict) -> Any:
        from llguidance import LLMatcher

        g = LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        return LLMatcher(self.lt, g)

    def step(self, m: Any, mask: torch.Tensor, token: int) -> None:
        m.unsafe_compute_mask_ptr(mask.data_ptr(), mask.numel() * 4)
        assert m.consume_token(token), m.get_error()

    def rollback(self, m: Any, n: int) -> bool:
        return bool(m.rollback(n))


class XGrammar:
    name = "xgrammar"

    def __init__(self, tok: Any, vocab: int) -> None:
        import xgrammar as xg

        self.xg = xg
        self.compiler = xg.GrammarCompiler(
            xg.TokenizerInfo.from_huggingface(tok, vocab_size=vocab), cache_enabled=False
        )

    def compile(self, schema: dict) -> Any:
        compiled = self.compiler.compile_json_schema(
            json.dumps(schema), any_whitespace=False, separators=(",", ":")
        )
        return self.xg.GrammarMatcher(compiled, max_rollback_tokens=64)

    def step(self, m: Any, mask: torch.Tensor, token: int) -> None:
        m.fill_next_token_bitmask(mask)
        assert m.accept_token(token)

    def rollback(self, m: Any, n: int) -> bool:
        m.rollback(n)
        return True


class OutlinesCore:
    name = "outlines-core"

    def __init__(self, tok: Any, vocab: int) -> None:
        from outlines_core import Vocabulary

        decode = _byte_decoder()
        table: dict[bytes, list[int]] = {}
        special = set(tok.all_special_ids)
        for i, t in enumerate(tok.convert_ids_to_tokens(list(range(len(tok))))):
            if i not in special and t is not None:
                raw = bytes(decode[c] for c in t) if all(c in decode for c in t) else t.encode()
                table.setdefault(raw, []).append(i)
        self.vocab = Vocabulary(tok.eos_token_id, table)

    def compile(self, schema: dict) -> Any:
        from outlines_core import Guide, Index
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(json.dumps(schema), whitespace_pattern="")
        return Guide(Index(regex, self.vocab), max_rollback=64)

    def step(self, m: Any, mask: torch.Tensor, token: int) -> None:
        m.write_mask_into(mask.data_ptr(), mask.numel(), mask.element_size())
        m.advance(token)

    def rollback(self, m: Any, n: int) -> bool:
        m.rollback_state(n)
        return True


def _byte_decoder() -> dict[str, int]:
    """Byte-level BPE's printable stand-ins -> bytes (GPT-2's published mapping)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def measure(engine: Any, schema: dict, ids: list[int], words: int) -> dict[str, float]:
    """Medians of REPS fresh compiles and passes, after one warm-up pass."""
    mask = torch.zeros(1, words, dtype=torch.int32)
    compiles, passes = [], []
    for rep in range(REPS + 1):
        t0 = time.perf_counter()
        m = engine.compile(schema)
        t1 = time.perf_counter()
        for t in ids:
            engine.step(m, mask, t)
        t2 = time.perf_counter()
        if rep:  # the first pass fills lazy tables (tokenizer slices, caches)
            compiles.append(1e3 * (t1 - t0))
            passes.append(1e3 * (t2 - t1) / len(ids))
    return {"compile_ms": statistics.median(compiles), "ms_per_token": statistics.median(passes),
            "rollback": engine.rollback(m, min(3, len(ids)))}  # fmt: skip


def main() -> None:
    from transformers import AutoTokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default="build/pairs/qwen2.5-coder/llm")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    vocab = len(tok)
    words = (vocab + 31) // 32
    print(f"tokenizer {args.tokenizer}: {vocab} ids\n")
    print("| engine | set-up s | schema | compile ms | mask + advance ms/token | rollback |")
    print("|---|---|---|---|---|---|")
    kinds: list[Callable[[Any, int], Any]] = [Llguidance, XGrammar, OutlinesCore]
    for kind in kinds:
        t0 = time.perf_counter()
        try:
            engine = kind(tok, vocab)
        except ImportError as e:
            print(f"| {kind.name} | not installed ({e.name}) | | | | |")
            continue
        setup = time.perf_counter() - t0
        for case, (schema, text) in CASES.items():
            ids = tok.encode(text, add_special_tokens=False)
            r = measure(engine, schema, ids, words)
            print(f"| {kind.name} | {setup:.2f} | {case} | {r['compile_ms']:.1f} | "
                  f"{r['ms_per_token']:.3f} | {'yes' if r['rollback'] else 'no'} |")  # fmt: skip
            setup = 0.0


if __name__ == "__main__":
    main()
