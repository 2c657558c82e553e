"""Recipe trials for the demo models: train ``LLM_SPEC`` (or ``SLM_SPEC`` with
``--base slm``) with some fields changed, then compare runs' loss and validation
curves in one plot.

    python -m demo.trial train lr1e3 lr=0.001 steps=2800 val_every=1400
    python -m demo.trial train --base slm slm-seed1 seed=1
    python -m demo.trial plot out.png lr1e3=build/trial/lr1e3 run.log ...

``train`` writes build/trial/NAME (an HF folder with train_stats.json); it needs
build/tokenizer from ``python -m demo.build --stages tokenizer``. ``plot`` reads
each run's records from a trial folder or from a console log of a run (the same
JSON lines ``train_model`` prints; a run stopped early leaves only the log).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # demo.train imports torch; the plot command does not need it
    from demo.train import ModelSpec

TRIAL_DIR = Path("build/trial")
WINDOW = 400  # steps per point of the loss curve: logged losses are single noisy batches


def base_spec(base: str) -> ModelSpec:
    from demo.build import LLM_SPEC, SLM_SPEC

    specs = {"llm": LLM_SPEC, "slm": SLM_SPEC}
    if base not in specs:
        raise ValueError(f"{base!r}: expected a base recipe, one of {sorted(specs)}")
    return specs[base]


def overrides(pairs: list[str], base: str = "llm") -> dict[str, object]:
    """``["lr=0.001", "bf16=0"]`` -> typed field values of the ``base`` recipe."""
    spec = base_spec(base)
    out: dict[str, object] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not hasattr(spec, key) or key == "name":
            raise ValueError(f"{p!r}: expected field=value with a ModelSpec field")
        kind = type(getattr(spec, key))
        out[key] = value in ("1", "true") if kind is bool else kind(value)
    return out


def train(name: str, pairs: list[str], base: str = "llm") -> None:
    import torch
    from transformers import AutoTokenizer

    from demo.build import THREADS, TOKENIZER_DIR
    from demo.train import train_model

    spec = dataclasses.replace(base_spec(base), **overrides(pairs, base))  # type: ignore[arg-type]
    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        raise SystemExit(f"{TOKENIZER_DIR}/tokenizer.json is missing: "
                         "run python -m demo.build --stages tokenizer first")  # fmt: skip
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    stats = train_model(spec, tok, TRIAL_DIR / name, spec.steps * spec.batch)
    print(json.dumps({k: v for k, v in stats.items() if k != "log"}))


def records(path: Path) -> list[dict]:
    if path.is_dir():
        return json.loads((path / "train_stats.json").read_text())["log"]
    seen: dict[tuple[int, bool], dict] = {}  # first record per (step, kind)
    for line in path.read_text().replace("\r", "\n").splitlines():
        start = line.find('{"step": ')
        try:
            r = json.loads(line[start:]) if start >= 0 else None
        except json.JSONDecodeError:
            continue  # a progress bar glued to the record
        if isinstance(r, dict) and ("loss" in r or "val_accuracy" in r):
            seen.setdefault((r["step"], "loss" in r), r)
    return sorted(seen.values(), key=lambda r: r["step"])


def plot(out: Path, runs: list[str]) -> None:
    """One line per run; a run is PATH or LABEL=PATH (a trial folder or a console log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for spec in runs:
        label, _, path = spec.rpartition("=")
        run = Path(path)
        label = label or run.stem
        recs = records(run)
        losses = [(r["step"], r["loss"]) for r in recs if "loss" in r]
        pts = []
        for end in range(WINDOW, max(s for s, _ in losses) + 1, WINDOW):
            w = [x for s, x in losses if end - WINDOW < s <= end]
            pts.append((end, sum(w) / len(w)))
        ax_loss.plot(*zip(*pts, strict=True), marker=".", label=label)
        val = [(r["step"], r["val_accuracy"]) for r in recs if "val_accuracy" in r]
        if val:
            ax_val.plot(*zip(*val, strict=True), marker="o", label=label)
    ax_loss.set(yscale="log", xlabel="step", ylabel=f"answer loss (mean per {WINDOW} steps)")
    ax_val.set(xlabel="step", ylabel="validation exact match (200 items)", ylim=(0, 1))
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--base", choices=["llm", "slm"], default="llm", help="recipe to start from")
    t.add_argument("name")
    t.add_argument("set", nargs="*", help="ModelSpec field=value")
    p = sub.add_parser("plot")
    p.add_argument("out", type=Path)
    p.add_argument("runs", nargs="+", help="PATH or LABEL=PATH: trial folders or console logs")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        train(args.name, args.set, args.base)
    else:
        plot(args.out, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
