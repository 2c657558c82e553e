"""Train one demo causal LM (Llama architecture) from scratch on the CPU.

Deterministic: fixed seeds, a fixed data order, fixed step count, and
``torch.use_deterministic_algorithms``; the same machine reproduces the
weights bit for bit (thread count is pinned for that reason).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from demo.data import IGNORE, Encoded, batches, encode_item
from tasks.splits import load_split, train_stream

VAL_ITEMS = 200  # validation items decoded per in-training check (~20 s on 2 cores)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden: int  # d_model
    layers: int
    heads: int  # head_dim = hidden / heads
    ffn: int  # SwiGLU intermediate size
    steps: int  # optimizer steps
    lr: float  # peak learning rate (linear warm-up, cosine decay to 10%)
    batch: int = 32  # items per step (~125 tokens each)
    warmup: int = 100
    seed: int = 0
    max_positions: int = 512  # longest prompt + answer the model is built for
    val_every: int = 0  # greedy exact-match on VAL_ITEMS validation items every N steps (0: never)
    # bf16 autocast of the forward pass (weights and optimizer state stay fp32): 0.73 vs
    # 0.88 s per LLM step on a 2-core AVX-512 EPYC; saved weights are fp32 either way.
    # Only where native_bf16(): elsewhere bf16 matmuls are emulated, ~20x slower.
    bf16: bool = False
    # torch.compile the decoder's training forward/backward (inductor; needs a C++
    # compiler, ~1 min to compile): fuses the elementwise ops between the matmuls.
    compile: bool = False
    # attention kernel for training (users load SDPA either way; not saved in config.json).
    # "eager": SDPA's CPU backward is ~1.4x slower at the LLM's sizes (0.38 vs 0.27 s/step).
    attn: str = "eager"

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"steps and batch must be >= 1, got {self.steps}, {self.batch}")
        if self.attn not in ("eager", "sdpa"):
            raise ValueError(f"attn must be eager or sdpa, got {self.attn!r}")


def native_bf16() -> bool:
    """True where oneDNN runs bf16 matmuls natively (AVX-512 or AMX CPUs). On AVX2-only
    CPUs they fall back to a scalar path: 22 s vs 1.0 s (fp32) per LLM step measured
    on a 2-vCPU AVX2 EPYC: bf16 there would turn a ~1.5-hour build into ~35 hours."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def llama_config(spec: ModelSpec, tok: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec.hidden,
        intermediate_size=spec.ffn,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def encode_stream(
    tok: PreTrainedTokenizerFast, n_items: int, families: tuple[str, ...] | None = None
) -> list[Encoded]:
    """The first ``n_items`` of the seeded train stream as (token ids, prompt length)."""
    items = train_stream(families)
    return [encode_item(tok, next(items)) for _ in range(n_items)]


def non_embedding_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)


def flops_per_token(cfg: LlamaConfig, context: int) -> int:
    """Forward FLOPs per generated token, excluding embeddings and the LM head.

    2 FLOPs per weight of each layer, plus attention scores and values over
    ``context`` cached tokens (2 * 2 * context * hidden per layer).
    """
    d, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 2 * (4 * d * d + 3 * d * f) + 4 * context * d
    return n * per_layer


def train_model(
    spec: ModelSpec,
    tok: PreTrainedTokenizerFast,
    out_dir: Path,
    n_items: int,
    log_every: int = 50,
    families: tuple[str, ...] | None = None,
    encoded: Sequence[Encoded] | None = None,
) -> dict[str, object]:
    """Train on the first ``n_items`` train items, save the HF folder (config,
    safetensors, tokenizer) and return stats. ``encoded``: the train stream
    already encoded by :func:`encode_stream` (at least ``n_items`` long), to
    share one encoding between models."""
    torch.manual_seed(spec.seed)
    torch.use_deterministic_algorithms(True)
    if spec.bf16 and not native_bf16():
        tqdm.write(f"warning: {spec.name}: bf16 autocast on a CPU without native bf16 "
                   "matmuls (AVX2 only): expect ~20x slower steps than fp32")  # fmt: skip
    model = LlamaForCausalLM._from_config(llama_config(spec, tok), attn_implementation=spec.attn)
    hidden = hidden_states_fn(model, spec.compile)
    if encoded is None:
        encoded = encode_stream(tok, n_items, families)
    if len(encoded) < n_items:
        raise ValueError(f"{len(encoded)} encoded items given, {n_items} needed")
    encoded = encoded[:n_items]
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, spec))
    model.train()
    log: list[dict[str, float]] = []
    tokens = 0
    t0 = time.time()
    step = 0
    bar = tqdm(total=spec.steps, desc=f"train {spec.name}", unit="step")
    epoch = 0
    while step < spec.steps:
        for ids, labels in batches(encoded, spec.batch, tok.pad_token_id, seed=spec.seed + epoch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.bf16):
                loss = answer_loss(hidden, model.lm_head, ids, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            tokens += int((ids != tok.pad_token_id).sum())
            step += 1
            bar.update(1)
            if step % log_every == 0 or step == spec.steps:
                rec = {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "tokens": tokens,
                    "lr": sched.get_last_lr()[0],
                    "elapsed_s": round(time.time() - t0, 1),
                }
                log.append(rec)
                bar.set_postfix(loss=rec["loss"])
                tqdm.write(json.dumps(rec))
            if spec.val_every and (step % spec.val_every == 0 or step == spec.steps):
                log.append(validate(model, tok, step, families))
                model.train()
            if step >= spec.steps:
                break
        epoch += 1
    bar.close()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    stats = {
        "spec": asdict(spec),
        "train_items": n_items,
        "train_tokens": tokens,
        "train_time_s": round(time.time() - t0, 1),
        "non_embedding_params": non_embedding_params(model),
        "params": sum(p.numel() for p in model.parameters()),
        "final_loss": next((r["loss"] for r in reversed(log) if "loss" in r), None),
        "log": log,
    }
    (out_dir / "train_stats.json").write_text(json.dumps(stats, indent=1))
    return stats


def hidden_states_fn(
    model: LlamaForCausalLM, compile_: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    def fn(ids: torch.Tensor) -> torch.Tensor:
        return model.model(input_ids=ids).last_hidden_state

    return torch.compile(fn, dynamic=True) if compile_ else fn


def answer_loss(
    hidden: Callable[[torch.Tensor], torch.Tensor],
    lm_head: torch.nn.Module,
    ids: torch.Tensor,
    labels: torch.Tensor,
) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer tokens (labels != IGNORE).

    The same value as ``model(ids, labels=labels).loss`` but cheaper: the LM head
    runs on answer positions only, and no attention mask is built, because batches
    are right-padded so under the causal mask no real token attends to a pad.
    """
    h = hidden(ids)[:, :-1]  # [B, T-1, hidden]: position t predicts token t+1
    target = labels[:, 1:]
    keep = target != IGNORE
    logits = lm_head(h[keep])  # [answer tokens, vocab]
    return torch.nn.functional.cross_entropy(logits.float(), target[keep])


def validate(
    model: LlamaForCausalLM,
    tok: PreTrainedTokenizerFast,
    step: int,
    families: tuple[str, ...] | None = None,
) -> dict:
    """Greedy exact-match on the first VAL_ITEMS validation items (never the test split)."""
    from engines.reference import HFGenerateDecoder
    from tasks.evaluate import evaluate

    side = tok.padding_side
    with torch.inference_mode():
        decoder = HFGenerateDecoder.from_model(model, tok)
        rep, _ = evaluate(load_split("validation", families=families)[:VAL_ITEMS], decoder)
    tok.padding_side = side  # the saved tokenizer keeps its own padding side
    rec = {"step": step, "val_accuracy": rep.accuracy, "val_per_family": rep.per_family}
    tqdm.write(json.dumps(rec))
    return rec


def _lr_factor(step: int, spec: ModelSpec) -> float:
    if step < spec.warmup:
        return (step + 1) / spec.warmup
    frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
