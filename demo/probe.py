"""Is a reference format learnable? Train the LLM architecture on one family only.

    python -m demo.probe --family compare --steps 600 [--out build/probe]

A full demo build takes ~1 hour; this trains a fresh copy of the LLM's
architecture (``demo.build.LLM_SPEC``) for a few hundred steps on one task
family with the shipped tokenizer and reports greedy exact match on that
family's validation items every ``--val-every`` steps (the build's own
validation check). Use it to compare reference formats of a family before
paying for a rebuild; numbers are not comparable with a mixed-family build.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from demo.build import LLM_SPEC, THREADS
from demo.train import train_model
from tasks.splits import check_families


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--family", required=True, help="one task family, e.g. compare")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--tokenizer", default="models/demo/llm", help="folder with tokenizer.json")
    ap.add_argument("--out", default="build/probe", type=Path)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (AVX-512/AMX CPUs only)")
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    fams = check_families([args.family])
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    spec = replace(
        LLM_SPEC,
        name=f"probe-{args.family}",
        steps=args.steps,
        val_every=args.val_every,
        bf16=args.bf16,
    )
    st = train_model(spec, tok, args.out / spec.name, spec.steps * spec.batch, families=fams)
    vals = [r for r in st["log"] if "val_accuracy" in r]  # type: ignore[union-attr]
    print(json.dumps({"family": args.family, "steps": args.steps, "val": vals}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
