"""Build the embedded demo model pair: ``python -m demo.build --out models/demo``.

Stages (all deterministic, fixed seeds):
  tokenizer  byte-level BPE trained on the first TOKENIZER_ITEMS train items
  llm        Llama, 4 x 256, trained LLM_SPEC.steps steps
  slm        Llama, 3 x 96 (>= 8x fewer non-embedding FLOPs/token), fewer steps
  cards      greedy test-split accuracy per family -> README.md model cards
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from demo.tokenizer import save_tokenizer, train_tokenizer
from demo.train import ModelSpec, encode_stream, native_bf16, train_model
from tasks.splits import load_split

TOKENIZER_ITEMS = 20_000
LLM_SPEC = ModelSpec(
    "llm",
    hidden=256,
    layers=4,
    heads=8,
    ffn=768,
    # 2800 steps at peak lr 5e-4 (warmup 100, cosine to 10%): validation 0.98 in 2744 s fp32
    # on an AVX2 EPYC, where 2e-3 needed 5600 steps for 0.935 (bf16) / 0.805 (fp32); 1e-3 and
    # 4e-3 reached 0.735 / 0.09 in 2800 (docs/demo-lr/).
    steps=2800,
    lr=5e-4,
    batch=24,
    val_every=2800,  # validation at the end only: each check costs ~20-40 s plus a recompile
    # bf16: 1.2x faster steps on AVX-512 bf16 CPUs (same validation curve in a trial); fp32
    # on AVX2-only CPUs, where bf16 is emulated. The model card records which one ran.
    bf16=native_bf16(),
    # compiled: 0.44 vs 0.67 s/step (bf16, AVX-512 EPYC), 0.91 vs 0.99 (fp32, AVX2 EPYC),
    # after ~60-115 s of compiling; the SLM gains nothing.
    compile=True,
)
# 3 layers, 2200 steps: validation 0.23 at step 2200, test 0.255 (v4; v3.1: 0.18 / 0.211). On the
# v3 tasks 3000 steps reached 0.673 on test, over the 0.65 an SLM may reach for routing to matter.
# SDPA for the SLM: 465 s (v3, SDPA) vs 603 s (v3.1, eager) for its 2200 steps on the
# AVX-512 EPYC, 0.197 vs 0.207 s/step on an AVX2 EPYC.
SLM_SPEC = ModelSpec(
    "slm", hidden=96, layers=3, heads=3, ffn=256, steps=2200, lr=3e-3, val_every=2200, attn="sdpa"
)
TOKENIZER_DIR = Path("build/tokenizer")  # intermediate; each model folder gets a copy
THREADS = 2  # pinned: bit-for-bit reproducibility depends on the thread count


def build_tokenizer(out: Path) -> None:
    items = load_split("train", TOKENIZER_ITEMS)
    tok = train_tokenizer(it.prompt_text + "\n" + it.reference for it in items)
    save_tokenizer(tok, TOKENIZER_DIR)


def build_models(out: Path, specs: list[ModelSpec]) -> None:
    """Train each spec; the SLM's train items are a prefix of the LLM's, so the
    stream is encoded once (~0.5 ms per item) for all of them."""
    from transformers import AutoTokenizer

    if not specs:
        return
    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    encoded = encode_stream(tok, max(s.steps * s.batch for s in specs))
    for spec in specs:
        st = train_model(spec, tok, out / spec.name, spec.steps * spec.batch, encoded=encoded)
        print(json.dumps({k: v for k, v in st.items() if k != "log"}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="models/demo", type=Path)
    ap.add_argument("--stages", default="tokenizer,llm,slm,cards")
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    stages = args.stages.split(",")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if "tokenizer" in stages:
        build_tokenizer(out)
    build_models(out, [s for s in (LLM_SPEC, SLM_SPEC) if s.name in stages])
    if "cards" in stages:
        from demo.cards import write_cards

        write_cards(out)
    print(f"built {', '.join(stages)} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
