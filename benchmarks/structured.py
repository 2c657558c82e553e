"""Structured output on the demo tasks: does every answer parse, and what does it cost?

    phase 1 (HTTP): ``citer serve`` on the pair; N test items, each asked twice through
      the official openai client at concurrency C: free text (verified by its
      "The answer is X." line) and structured (response_format json_schema
      {"answer": ...}, the answer's type per item: bounded integer, letter enum or short
      string), for slm, llm and citer. Parse rate, schema validity, accuracy, LLM share,
      forced share (tokens the grammar allowed alone), tok/s.
      A third variant, steps, asks {"steps": [lines...], "answer": ...}: the worked
      lines the models were trained to write, as JSON strings, then the answer.
    phase 2 (in-process): the same structured requests through the scheduler with the
      grammar masking timed: ms per masked token and its share of the step time.
    phase 3 (--mask-tokenizer DIR, e.g. the real pair's): masking alone on that
      vocabulary, 16 rows of random logits, at the start of an answer and inside a
      string (where nearly every token is allowed): ms per row.

Run: ``make bench-structured`` (about 3 minutes on 2 cores); prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODELS = ("slm", "llm", "citer")
BOUND = 10**6  # integer answers: |answer| < BOUND (an unbounded integer lets a model
# that never learnt to close a JSON number write digits until max_tokens)


VARIANTS = ("free text", "answer", "steps")
# steps: the worked lines first (each a JSON string: the models write a line, then the
# grammar closes the string where they would start a new line), then the answer
STEPS = {"type": "array", "items": {"type": "string", "maxLength": 160}, "maxItems": 16}


def answer_schema(answer: str, steps: bool = False) -> dict[str, Any]:
    if re.fullmatch(r"-?\d+", answer):
        field = {"type": "integer", "minimum": -BOUND + 1, "maximum": BOUND - 1}
    elif re.fullmatch(r"[A-E]", answer):
        field = {"enum": list("ABCDE")}
    else:
        field = {"type": "string", "maxLength": 64}
    props = {"steps": STEPS, "answer": field} if steps else {"answer": field}
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}  # fmt: skip


def valid(obj: Any, schema: dict[str, Any]) -> bool:
    """``obj`` against an ``answer_schema`` (the only shapes this benchmark asks)."""
    if not isinstance(obj, dict) or set(obj) != set(schema["properties"]):
        return False
    steps = obj.get("steps", [])
    if not isinstance(steps, list) or len(steps) > STEPS["maxItems"]:
        return False
    if any(not isinstance(x, str) or len(x) > STEPS["items"]["maxLength"] for x in steps):
        return False
    x, rule = obj["answer"], schema["properties"]["answer"]
    if "enum" in rule:
        return x in rule["enum"]
    if rule.get("type") == "integer":
        return isinstance(x, int) and not isinstance(x, bool) and abs(x) < BOUND
    return isinstance(x, str) and len(x) <= rule["maxLength"]


def structured_messages(item: Any, steps: bool = False) -> list[dict[str, str]]:
    msgs = [dict(m) for m in item.messages]
    shape = '{"steps": [...], "answer": ...}' if steps else '{"answer": ...}'
    msgs[-1]["content"] += f"\nReply in JSON: {shape}"
    return msgs


def ask(client: Any, model: str, item: Any, variant: str, max_tokens: int) -> dict:
    from tasks.verify import is_correct, normalize

    kw: dict[str, Any] = dict(model=model, max_tokens=max_tokens, temperature=0, seed=0)
    structured, steps = variant != "free text", variant == "steps"
    if not structured:
        out = client.chat.completions.create(messages=item.messages, **kw)
        text = out.choices[0].message.content or ""
        ok, parsed, schema_ok = is_correct(text, item.answer), None, None
    else:
        schema = answer_schema(item.answer, steps)
        fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                                                      "strict": True}}  # fmt: skip
        out = client.chat.completions.create(
            messages=structured_messages(item, steps), response_format=fmt, **kw
        )
        text = out.choices[0].message.content or ""
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        schema_ok = parsed is not None and valid(parsed, schema)
        ok = bool(schema_ok) and normalize(str(parsed["answer"])) == normalize(item.answer)
    u = out.usage.model_extra
    return {"correct": ok, "parsed": parsed is not None if structured else None,
            "valid": schema_ok, "tokens": out.usage.completion_tokens,
            "llm": u["llm_tokens"], "forced": u["forced_tokens"],
            "finish": out.choices[0].finish_reason}  # fmt: skip


def http_phase(args: argparse.Namespace, items: list) -> list[dict]:
    import openai

    from benchmarks.serving_server import gateway_server

    rows = []
    env = {"CITER_SLM": args.slm, "CITER_LLM": args.llm, "CITER_ROUTER_CARD": args.router_card}
    with gateway_server(Path(args.log), env) as (url, key, _):
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=600)
        for model in MODELS:
            for variant in VARIANTS:
                t0 = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    res = list(pool.map(lambda it, m=model, v=variant: ask(
                        client, m, it, v, args.max_tokens), items))  # fmt: skip
                wall = time.perf_counter() - t0
                rows.append(summary(model, variant, res, wall))
                print(fmt_row(rows[-1]), flush=True)
    return rows


def summary(model: str, variant: str, res: list[dict], wall: float) -> dict:
    n, toks = len(res), sum(r["tokens"] for r in res)
    structured = variant != "free text"
    return {
        "model": model, "variant": variant, "items": n,
        "parsed": sum(bool(r["parsed"]) for r in res) / n if structured else None,
        "valid": sum(bool(r["valid"]) for r in res) / n if structured else None,
        "stopped": sum(r["finish"] == "stop" for r in res) / n,
        "accuracy": sum(r["correct"] for r in res) / n,
        "llm_share": sum(r["llm"] for r in res) / max(1, toks),
        "forced_share": sum(r["forced"] for r in res) / max(1, toks),
        "tokens_per_answer": toks / n, "tok_s": toks / wall,
    }  # fmt: skip


HEADER = ("| model | variant | stopped | parsed | valid | accuracy | LLM share | forced share "
          "| tokens/answer | tok/s |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip


def fmt_row(r: dict) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    return (f"| {r['model']} | {r['variant']} | {pct(r['stopped'])} | {pct(r['parsed'])} | "
            f"{pct(r['valid'])} | "
            f"{pct(r['accuracy'])} | {pct(r['llm_share'])} | {pct(r['forced_share'])} | "
            f"{r['tokens_per_answer']:.1f} | {r['tok_s']:.0f} |")  # fmt: skip


def mask_phase(args: argparse.Namespace, items: list) -> dict:
    """Time spent in grammar masking inside the engines, per masked row and per step."""
    import engines.hf as hf_mod
    from engines.async_engine import generate_batch
    from engines.pair import PairConfig, build_pair
    from engines.scheduler import Scheduler, SchedulerConfig
    from engines.types import Request, SamplingParams
    from router_models.registry import make_router
    from tasks.chat import chat_ids

    pair = build_pair(PairConfig(slm=args.slm, llm=args.llm))
    router, _ = make_router(pair, "citer", None, None, args.router_card)
    sched = Scheduler(pair.slm, pair.llm, router, pair.tokenizer, SchedulerConfig(max_batch=16))
    spent = {"s": 0.0, "rows": 0}
    inner = hf_mod.mask_logits

    def timed(logits, grammars, eos):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return inner(logits, grammars, eos)
        finally:
            spent["s"] += time.perf_counter() - t
            spent["rows"] += sum(g is not None for g in grammars)

    hf_mod.mask_logits = timed
    from engines.grammar import json_schema_grammar

    reqs = [
        Request(f"m{i}", chat_ids(pair.tokenizer, structured_messages(it)),
                SamplingParams(max_tokens=args.max_tokens), grammar=json_schema_grammar(
                    answer_schema(it.answer)))
        for i, it in enumerate(items)
    ]  # fmt: skip
    t0 = time.perf_counter()
    outs = generate_batch(sched, reqs)
    wall = time.perf_counter() - t0
    hf_mod.mask_logits = inner
    tot = sched.totals
    step_s = tot.slm_s + tot.router_s + tot.llm_s + tot.sched_s
    return {"masked_rows": spent["rows"], "mask_ms_per_row": 1e3 * spent["s"] / spent["rows"],
            "mask_share_of_step": spent["s"] / step_s, "steps": tot.steps,
            "tokens": sum(len(o.token_ids) for o in outs), "wall_s": wall}  # fmt: skip


def mask_micro(path: str, rows: int = 16, reps: int = 20) -> dict[str, float]:
    """ms per masked row on the vocabulary of the tokenizer at ``path``."""
    import torch

    from engines.grammar import Grammars, json_schema_grammar
    from engines.hf import load_tokenizer
    from engines.masking import mask_logits

    tok = load_tokenizer(path)
    vocab = len(tok)
    grammars = Grammars(tok, vocab, frozenset([tok.eos_token_id]))
    grammar = json_schema_grammar(answer_schema("A", steps=True))
    out = {"vocab": vocab}
    for state, prefix in (("start", ""), ("in a string", '{"steps":["Look at')):
        seqs = [grammars.start(grammar) for _ in range(rows)]
        for g in seqs:
            for t in tok.encode(prefix, add_special_tokens=False):
                g.advance(t)
        logits = torch.randn(rows, vocab)
        mask_logits(logits.clone(), seqs, [tok.eos_token_id])  # warm
        t0 = time.perf_counter()
        for _ in range(reps):
            mask_logits(logits.clone(), seqs, [tok.eos_token_id])
        out[state] = 1e3 * (time.perf_counter() - t0) / (reps * rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--slm", default="models/demo/slm")
    ap.add_argument("--llm", default="models/demo/llm")
    ap.add_argument("--router-card", default="models/demo/router")
    ap.add_argument("--log", default="build/bench-structured.log")
    ap.add_argument("--out", default="benchmarks/structured.json")
    ap.add_argument(
        "--mask-tokenizer",
        default="build/pairs/qwen2.5-coder/llm",
        help="phase 3's vocabulary (skipped if the folder is missing)",
    )
    args = ap.parse_args()
    from tasks.splits import load_split

    items = load_split("test", args.items)
    print(HEADER)
    rows = http_phase(args, items)
    mask = mask_phase(args, items[:64])
    print(
        f"masking: {mask['mask_ms_per_row']:.3f} ms per masked row, "
        f"{100 * mask['mask_share_of_step']:.1f}% of step time ({mask['masked_rows']} rows)"
    )
    micro = None
    if Path(args.mask_tokenizer).is_dir():
        micro = mask_micro(args.mask_tokenizer)
        print(
            f"masking alone, vocab {micro['vocab']}: {micro['start']:.3f} ms per row at "
            f"the start, {micro['in a string']:.3f} inside a string"
        )
    Path(args.out).write_text(json.dumps({
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "command": "make bench-structured", "items": args.items,
        "concurrency": args.concurrency, "max_tokens": args.max_tokens,
        "rows": rows, "masking": mask, "masking_alone": micro}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
