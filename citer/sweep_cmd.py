"""``citer eval --sweep``: every routing policy over a sweep of LLM shares, one harness.

    test items --ScheduledDecoder (real scheduler), per policy x threshold--> Points
      --router_models.train.sweep--> table (stdout) + sweep.json + sweep.png

Thresholds: ``random`` uses 1 - share (its expected share); ``confidence`` and
``entropy`` are calibrated on teacher-forced validation rows; CITER cards use
their own calibration tables (``--target-share``). The query-level router's
curve is composed exactly from the SLM-only and LLM-only runs (one decision
per request), with its scores from the SLM's hidden state at each prompt.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

SWEEP_SHARES = (0.05, 0.1, 0.2, 0.3, 0.5)
CARD_POLICIES = ("citer_s", "citer_round1")  # baseline cards under --baselines
ALL = ("slm", "llm", "random", "confidence", "entropy", *CARD_POLICIES, "citer", "query")


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sweep (citer eval --sweep)")
    g.add_argument("--sweep", action="store_true", help="run every policy over a share sweep")
    g.add_argument(
        "--sweep-shares",
        default=",".join(map(str, SWEEP_SHARES)),
        help="target LLM token shares per policy",
    )
    g.add_argument("--sweep-policies", default=",".join(ALL), help="subset of " + ",".join(ALL))
    g.add_argument(
        "--baselines",
        default="build/router/cards",
        help="folder with the citer_s, citer_round1 and query cards (make router)",
    )
    g.add_argument(
        "--calib-items",
        type=int,
        default=400,
        help="validation items for calibrating confidence/entropy thresholds",
    )
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads for the sweep")
    g.add_argument("--sweep-out", default="build/sweep", help="folder for sweep.json, sweep.png")


def _parse_shares(text: str) -> list[float]:
    try:
        shares = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sweep-shares {text!r}: need comma-separated numbers") from None
    if not shares or any(not 0.0 < q < 1.0 for q in shares):
        raise ValueError(f"--sweep-shares {text!r}: each share must lie strictly in (0, 1)")
    return shares


def flops_per_token(engine: Any) -> float:
    """2 x (weights used per token): every non-embedding weight plus the LM head."""
    model = engine.model
    emb = model.get_input_embeddings().weight
    body = sum(p.numel() for p in model.parameters() if p is not emb)
    head = model.get_output_embeddings().weight
    extra = head.numel() if head is emb else 0  # a tied head is still a matmul per token
    return 2.0 * (body + extra)


def item_flops(out: Any, fpt: tuple[float, float]) -> float:
    """Estimated forward FLOPs of one request: tokens each model processed x FLOPs/token.

    Every token in a model's cache was processed once: the SLM's inputs plus
    its drafts (fed back while drafting), the LLM's catch-up inputs; when the
    LLM wrote every token it ran ahead alone and processed the whole sequence.
    """
    st = out.stats
    slm = st.slm_input_tokens + st.drafted_tokens
    llm = st.llm_input_tokens
    if st.llm_tokens and st.llm_tokens == len(out.token_ids):
        llm = max(llm, len(out.prompt_ids) + len(out.token_ids) - 1)
    return fpt[0] * slm + fpt[1] * llm


def cmd_sweep(args: argparse.Namespace, items: list) -> int:
    import torch

    from citer.routed import ScheduledDecoder
    from engines.pair import PairConfig, build_pair
    from router_models.card import DEFAULT_CARD
    from router_models.registry import make_router
    from router_models.train import sweep
    from router_models.train.plot import plot_sweep
    from tasks.evaluate import evaluate

    shares = _parse_shares(args.sweep_shares)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    policies = [p for p in args.sweep_policies.split(",") if p]
    bad = [p for p in policies if p not in ALL]
    if bad or not {"slm", "llm"} <= set(policies):
        raise ValueError(
            f"--sweep-policies: unknown {bad}"
            if bad
            else "--sweep-policies must include slm and llm (the curve's ends)"
        )
    card = args.router_card or DEFAULT_CARD
    base = Path(args.baselines)
    cards = {"citer": card, **{p: str(base / p) for p in (*CARD_POLICIES, "query")}}
    pair = build_pair(PairConfig(args.slm, args.llm, args.device, args.dtype))
    # Load every card first: a card for another pair fails before any decoding.
    for p in [p for p in policies if p in cards]:
        make_router(pair, "citer", threshold=0.5, card=cards[p])
    plan = _thresholds(args, pair, policies, shares, cards)
    fpt = (flops_per_token(pair.slm), flops_per_token(pair.llm))
    curves: dict[str, list[sweep.Point]] = {}
    t0 = time.perf_counter()
    for policy, runs in plan.items():
        for target, thr in runs:
            name = "citer" if policy in cards else policy
            router, thr = make_router(
                pair, name, threshold=thr, card=cards.get(policy) if name == "citer" else None
            )
            dec = ScheduledDecoder(pair, router, thr, args.window, args.concurrency)
            rep, gens = evaluate(items, dec)
            st = dec.stats()
            item_fl = [item_flops(o, fpt) for o in dec.outputs]
            pt = sweep.Point(
                policy,
                thr,
                target,
                float(st["llm_token_share"]),
                rep.accuracy,
                rep.wall_s,
                sum(item_fl),
                rep.n,
                list(rep.correct),
                [len(g.token_ids) for g in gens],
                item_fl,
            )
            curves.setdefault(policy, []).append(pt)
            print(
                f"sweep {policy:<13} target {target if target is not None else '-':<5} "
                f"thr {thr:8.4f}  share {pt.llm_share:.3f}  acc {pt.accuracy:.3f}  "
                f"{pt.wall_s:.0f} s",
                flush=True,
            )
    if "query" in policies:
        from router_models.train.baselines import query_scores
        from router_models.train.collect import encode

        qrouter, _ = make_router(pair, "citer", threshold=0.5, card=cards["query"])
        prompts = [encode(pair.tokenizer, it)[0] for it in items]
        qs = query_scores(qrouter.model, pair.slm, prompts)
        curves["query"] = sweep.query_curve(qs, curves["slm"][0], curves["llm"][0])
    rows = sweep.summarize(curves)
    out = Path(args.sweep_out)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_sweep(
        curves, out / "sweep.png", f"{args.split} split, n={len(items)}, window {args.window}"
    )
    report = {
        "n": len(items),
        "split": args.split,
        "slm": args.slm,
        "llm": args.llm,
        "window": args.window,
        "concurrency": args.concurrency,
        "card": card,
        "flops_per_token": {"slm": fpt[0], "llm": fpt[1]},
        "wall_s": round(time.perf_counter() - t0, 1),
        "summary": rows,
        "points": {k: [p.to_json() for p in v] for k, v in curves.items()},
    }
    (out / "sweep.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(sweep.format_table(rows))
    print(f"wrote {out / 'sweep.json'} and {png}")
    return 0


def _thresholds(
    args: argparse.Namespace,
    pair: Any,
    policies: list[str],
    shares: list[float],
    cards: dict[str, str],
) -> dict[str, list[tuple[float | None, float]]]:
    """policy -> [(target share, threshold)] to decode (query is composed, not decoded)."""
    from router_models.card import read_card
    from router_models.share import threshold_for_share

    plan: dict[str, list[tuple[float | None, float]]] = {"slm": [(None, 0.5)], "llm": [(None, 0.5)]}
    if "random" in policies:
        plan["random"] = [(q, 1.0 - q) for q in shares]
    free = [p for p in ("confidence", "entropy") if p in policies]
    if free:
        val = _validation_scores(args, pair)
        from router_models.train.calibrate import thresholds_for_shares

        for p in free:
            plan[p] = list(zip(shares, thresholds_for_shares(val[p], shares), strict=True))
    for p in [p for p in policies if p in cards and p != "query"]:
        c = read_card(cards[p])
        plan[p] = [(q, threshold_for_share(c, q)) for q in shares]
    return plan


def _validation_scores(args: argparse.Namespace, pair: Any) -> dict[str, Any]:
    """Confidence / entropy scores of teacher-forced validation rows (cached collection)."""
    from router_models.train.collect import collect_cached
    from tasks.splits import load_split

    if args.calib_items < 1:
        raise ValueError(f"--calib-items must be >= 1, got {args.calib_items}")
    items = load_split("validation", args.calib_items)
    coll, _ = collect_cached(
        pair.slm,
        pair.llm,
        pair.tokenizer,
        items,
        Path(args.baselines).parent / "collect",
        "validation",
    )
    return {"confidence": 1.0 - coll.topk[:, 0].exp(), "entropy": coll.entropy}
