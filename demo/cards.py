"""Measure the demo pair and write one model card (README.md) per model.

Measured on the test split (never trained on): greedy exact-match accuracy
per family, the per-token greedy agreement of SLM and LLM teacher-forced along
the reference answers, and batch-1 decode time per token on this machine.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

from demo.data import encode_item
from demo.train import flops_per_token, non_embedding_params
from engines.reference import HFGenerateDecoder
from tasks.evaluate import evaluate
from tasks.splits import load_split

AGREEMENT_ITEMS = 400  # test items whose reference answers are teacher-forced
TIMING_ITEMS = 8  # items decoded one at a time for the per-token latency
CONTEXT = 128  # typical prompt + answer length, for FLOPs/token


def agreement(out: Path, n: int = AGREEMENT_ITEMS) -> dict[str, float]:
    """Share of answer positions where SLM and LLM greedy tokens agree (and hit the reference)."""
    tok = AutoTokenizer.from_pretrained(str(out / "llm"))
    models = {m: AutoModelForCausalLM.from_pretrained(str(out / m)).eval() for m in ("slm", "llm")}
    same = slm_ok = llm_ok = total = 0
    for it in load_split("test", n):
        ids, n_prompt = encode_item(tok, it)
        x = torch.tensor([ids])
        with torch.inference_mode():
            preds = {m: mod(x).logits[0, n_prompt - 1 : -1].argmax(-1) for m, mod in models.items()}
        ref = x[0, n_prompt:]  # [answer_len]
        same += int((preds["slm"] == preds["llm"]).sum())
        slm_ok += int((preds["slm"] == ref).sum())
        llm_ok += int((preds["llm"] == ref).sum())
        total += int(ref.numel())
    return {"agree": same / total, "slm_ref": slm_ok / total, "llm_ref": llm_ok / total,
            "positions": total}  # fmt: skip


def decode_ms_per_token(out: Path, repeats: int = 5) -> dict[str, float]:
    """Median batch-1 greedy decode time per token of each model, measured
    interleaved (SLM, LLM, SLM, ...) so background load hits both alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models decode fastest on one thread (and least noisily)
    decs = {m: HFGenerateDecoder(str(out / m), batch_size=1) for m in ("slm", "llm")}
    items = load_split("validation", TIMING_ITEMS)
    runs: dict[str, list[float]] = {m: [] for m in decs}
    for dec in decs.values():
        dec(items[:1])  # warm-up
    for _ in range(repeats):
        for m, dec in decs.items():
            t0 = time.perf_counter()
            gens = dec(items)
            runs[m].append(
                1000 * (time.perf_counter() - t0) / sum(len(g.token_ids) + 1 for g in gens)
            )
    torch.set_num_threads(threads)
    return {m: statistics.median(v) for m, v in runs.items()}


def write_cards(out: Path) -> dict[str, object]:
    items = load_split("test")
    cpu = f"{platform.machine()} ({torch.backends.cpu.get_cpu_capability()})"
    summary: dict[str, object] = {"machine": f"{cpu}, {torch.get_num_threads()} "
                                  "CPU threads, fp32 evaluation"}  # fmt: skip
    ms = decode_ms_per_token(out)
    for m in ("llm", "slm"):
        report, _ = evaluate(items, HFGenerateDecoder(str(out / m)))
        cfg = LlamaConfig.from_pretrained(str(out / m))
        model = AutoModelForCausalLM.from_pretrained(str(out / m))
        stats = json.loads((out / m / "train_stats.json").read_text())
        summary[m] = {
            "test_accuracy": round(report.accuracy, 4),
            "per_family": {k: round(v, 4) for k, v in report.per_family.items()},
            "non_embedding_params": non_embedding_params(model),
            "params": sum(p.numel() for p in model.parameters()),
            "flops_per_token": flops_per_token(cfg, CONTEXT),
            "decode_ms_per_token": round(ms[m], 3),
            "train_tokens": stats["train_tokens"],
            "train_time_s": stats["train_time_s"],
            "steps": stats["spec"]["steps"],
            "train_precision": "bf16 autocast" if stats["spec"].get("bf16") else "fp32",
            "arch": f"Llama, {cfg.num_hidden_layers} layers x {cfg.hidden_size} hidden, "
            f"{cfg.num_attention_heads} heads, SwiGLU {cfg.intermediate_size}, vocab "
            f"{cfg.vocab_size}, tied embeddings",
        }
        print(json.dumps({m: summary[m]}))
    summary["agreement"] = {k: round(v, 4) for k, v in agreement(out).items()}
    (out / "pair.json").write_text(json.dumps(summary, indent=1) + "\n")
    for m in ("llm", "slm"):
        (out / m / "README.md").write_text(_card(m, summary))
    return summary


def _card(m: str, s: dict) -> str:
    d = s[m]
    other = s["slm" if m == "llm" else "llm"]
    ratio = s["llm"]["flops_per_token"] / s["slm"]["flops_per_token"]
    fam = "\n".join(f"| {k} | {v:.3f} |" for k, v in d["per_family"].items())
    role = "large (LLM)" if m == "llm" else "small (SLM)"
    a = s["agreement"]
    return f"""# citer demo {role} model

Trained from scratch by `make demo-models` (`demo/build.py`) on the citer task
suite (`tasks/`), for the token-level routing demo. Standard Hugging Face
folder: load with `AutoModelForCausalLM.from_pretrained`.

- Architecture: {d["arch"]}
- Parameters: {d["params"]:,} ({d["non_embedding_params"]:,} non-embedding)
- Forward FLOPs/token (non-embedding, {CONTEXT}-token context): {d["flops_per_token"]:,}
  (LLM / SLM ratio {ratio:.1f}x)
- Training: {d["steps"]} steps, {d["train_tokens"]:,} tokens, {d["train_time_s"]:.0f} s
  ({d["train_precision"]}, fp32 weights) on {s["machine"]}
- Decode time (batch 1, greedy, HF generate, 1 thread, median of 5 interleaved runs):
  {d["decode_ms_per_token"]} ms/token
  (the other model: {other["decode_ms_per_token"]} ms/token)

## Test split accuracy (greedy, exact match, 1000 items)

| family | accuracy |
|---|---|
{fam}
| **all** | **{d["test_accuracy"]:.3f}** |

## SLM/LLM agreement (teacher-forced on {a["positions"]:,} reference answer tokens)

SLM and LLM greedy tokens agree on {a["agree"]:.1%} of positions; the SLM
matches the reference on {a["slm_ref"]:.1%}, the LLM on {a["llm_ref"]:.1%}.
"""
