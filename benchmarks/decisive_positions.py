"""Which SLM-LLM divergences decide a GSM8K answer, by the class of the drafted token.

    a collection teacher-forced along the LLM's own right answers (``--references llm``)
      rows where the SLM's argmax leaves that path, sampled per token class
      (number, word, other) --prompt + answer[:t] + SLM token--> the LLM alone continues
      --verifier--> right (the LLM recovers: the divergence was harmless) or wrong (decisive)

A router pays for every position it sends to the LLM. Confidence sends the SLM's
uncertain positions whatever they are; if divergences on words were mostly harmless
and those on numbers mostly decisive, a router reading the drafted token's class could
spend the same LLM tokens where they change answers. This measures that premise; it
trains nothing. Run: ``python -m benchmarks.decisive_positions --per-class 40``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from router_models.token_class import CLASSES, token_class


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """P(score of a True row > score of a False row), ties counted half; None if one class."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def sample_rows(coll: Any, tokenizer: Any, per_class: int, seed: int) -> dict[str, list[int]]:
    """Up to ``per_class`` seeded rows per class where the SLM's argmax leaves the path."""
    by_class: dict[str, list[int]] = defaultdict(list)
    off = (coll.slm != coll.ref).nonzero().flatten().tolist()
    for r in off:
        by_class[token_class(tokenizer.decode([int(coll.slm[r])]))].append(r)
    rng = random.Random(seed)
    return {c: sorted(rng.sample(by_class[c], min(per_class, len(by_class[c])))) for c in CLASSES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="build/pairs/qwen2.5-coder")
    ap.add_argument("--collection", default="build/real-router-r2r/collect",
                    help="work dir collect/ of a --references llm training run")  # fmt: skip
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/real/decisive.json")
    args = ap.parse_args()
    import torch

    from engines.pair import PairConfig, build_pair
    from router_models.policies import AlwaysLLM
    from router_models.train.collect import load_collection
    from router_models.train.rollout import RolloutConfig, rollout_outcomes

    torch.set_num_threads(args.threads)
    found = sorted(Path(args.collection).glob("train-*.safetensors"))
    if not found:
        raise SystemExit(f"no train collection in {args.collection}: run make real-router-r2r")
    coll = load_collection(str(found[0]).removesuffix(".safetensors"))
    if coll is None:
        raise SystemExit(f"{found[0]}: written in another collection format; collect again")
    pair_dir = Path(args.pair)
    pair = build_pair(PairConfig(str(pair_dir / "slm"), str(pair_dir / "llm"), dtype="bfloat16"))
    tok = pair.tokenizer
    off = coll.slm != coll.ref
    print(f"{len(coll)} rows on {coll.n_items} items; the SLM leaves the path on {int(off.sum())}")
    rows = sample_rows(coll, tok, args.per_class, args.seed)
    flat = [r for c in CLASSES for r in rows[c]]
    cfg = RolloutConfig(max_tokens=320, slack=24, window=4, concurrency=16)
    right, stats = rollout_outcomes(coll, flat, pair.slm, pair.llm, tok, AlwaysLLM(), 0.5, cfg)
    verdict = dict(zip(flat, right, strict=True))
    conf = (1.0 - coll.topk[:, 0].exp()).tolist()  # the confidence router's score per row
    result: dict[str, Any] = {"rows": len(coll), "off_path": int(off.sum()), "rollouts": stats}
    off_classes = [token_class(tok.decode([int(coll.slm[r])])) for r in off.nonzero().flatten()]
    for c in CLASSES:
        dec = [not verdict[r] for r in rows[c]]
        result[c] = {
            "off_path_rows": off_classes.count(c),
            "sampled": len(rows[c]),
            "decisive": sum(dec),
            "confidence_auc_decisive": auc([conf[r] for r in rows[c]], dec),
            "mean_confidence_score": round(sum(conf[r] for r in rows[c]) / max(1, len(rows[c])), 4),
        }
    result["sampled_rows"] = [  # per rollout, for rescoring with other routers offline
        {"row": r, "class": c, "decisive": not verdict[r], "confidence": round(conf[r], 4)}
        for c in CLASSES
        for r in rows[c]
    ]
    every = [r for c in CLASSES for r in rows[c]]
    result["all_sampled_confidence_auc_decisive"] = auc(
        [conf[r] for r in every], [not verdict[r] for r in every]
    )
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print("| drafted token | off-path rows | rolled out | decisive | share decisive |")
    print("|---|---|---|---|---|")
    for c in CLASSES:
        d = result[c]
        frac = d["decisive"] / max(1, d["sampled"])
        print(f"| {c} | {d['off_path_rows']} | {d['sampled']} | {d['decisive']} | {frac:.0%} |")
    print(json.dumps({k: v for k, v in result.items() if k != "sampled_rows"}, indent=1))


if __name__ == "__main__":
    main()
