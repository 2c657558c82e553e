"""``train_router``: the whole CITER pipeline for one model pair, stage by stage.

    items (train, validation) --check verifier--> collect (cached) --> loop.run_rounds
      --> calibrate on validation rows --> router card (out/) + baseline cards and a
      JSON report under work_dir/ (CITER-S, CITER round 1, query-level router)

Every stage is timed; the report (``work_dir/train_report.json``) holds label
statistics, one log line per round, the feature ablation and the timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from router_models.base import FEATURE_HIDDEN, FEATURE_TOKEN_CLASS, FEATURE_TOPK
from router_models.card import save_card
from router_models.citer import CiterMLP, CiterRouter
from router_models.token_class import class_table
from router_models.train import baselines
from router_models.train.ablation import feature_ablation
from router_models.train.calibrate import calibration_table, thresholds_for_shares
from router_models.train.collect import Collection, collect_cached
from router_models.train.labels import label_stats
from router_models.train.loop import LoopConfig, Round, base_labels, run_rounds
from router_models.train.references import (
    REFERENCES,
    check_verifiable,
    llm_answers_cached,
    llm_references,
    verdicts,
)
from router_models.train.rollout import (
    RolloutConfig,
    decode_accuracy,
    reference_accuracy,
)
from router_models.train.train import FitConfig, scores
from tasks.types import Item

CARD_NAMES = ("citer_s", "citer_round1", "query")  # baseline cards under work_dir/cards


@dataclass(frozen=True)
class TrainConfig:
    slm: str  # SLM folder (as recorded in the card)
    llm: str  # LLM folder
    out: str = "models/demo/router"  # the card to write
    work_dir: str = "build/router"  # collections, round checkpoints, baseline cards, report
    val_decode_items: int = 200  # validation items decoded per round (routed, real scheduler)
    val_shares: tuple[float, ...] = (0.1, 0.2, 0.3)  # target LLM shares decoded per round
    query_items: int = 1000  # train items decoded SLM-only to label the query-level router
    baselines: bool = True  # also write CITER-S, round-1 and query-level cards
    ablation: bool = True  # compare router input features offline
    # Decode the train items LLM-only first; shortcut rule 2 then labels LLM only on
    # items the LLM answers right (labels.py). False: rule 2 everywhere (the paper's).
    llm_check: bool = True
    # Train references: "data" (the items' worked solutions) or "llm" (the LLM's own
    # greedy answers to the items it solves, the rest dropped: references.py)
    references: str = "data"
    # Router inputs of the CITER cards; the query-level baseline always reads the hidden state.
    features: tuple[str, ...] = (FEATURE_HIDDEN, FEATURE_TOPK)
    fit: FitConfig = field(default_factory=FitConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    # The card's default threshold: the one its calibration gives this LLM token share
    # (None: 0.5, whatever share that means)
    default_share: float | None = 0.2

    def __post_init__(self) -> None:
        if self.references not in REFERENCES:
            raise ValueError(f"references={self.references!r}: one of {list(REFERENCES)}")
        if self.default_share is not None and not 0.0 <= self.default_share <= 1.0:
            raise ValueError(f"default_share={self.default_share}: must lie in [0, 1]")
        if self.val_decode_items < 0 or self.query_items < 0:
            raise ValueError("val_decode_items and query_items must be >= 0")
        if any(not 0.0 <= q <= 1.0 for q in self.val_shares):
            raise ValueError(f"val_shares={self.val_shares}: each must lie in [0, 1]")


def train_router(
    cfg: TrainConfig,
    engines: tuple[Any, Any, Any],
    pins: dict[str, str],
    train_items: Sequence[Item],
    val_items: Sequence[Item],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every stage; returns (and writes) the training report.

    ``pins`` is the served pair's identity every card is saved with
    (``tokenizer_hash``, ``slm_weights``: see ``citer.routed.Pair``).
    """
    check_verifiable(train_items, "train")
    check_verifiable(val_items, "validation")
    slm, llm, tok = engines
    work = Path(cfg.work_dir)
    timing: dict[str, float] = {}
    solves: list[bool] | None = None
    answers: list[str] | None = None
    if cfg.llm_check or cfg.references == "llm":
        t = time.perf_counter()
        answers = llm_answers_cached(engines, train_items, cfg.rollout, work / "collect")
        solves = verdicts(train_items, answers)
        timing["llm_check_s"] = round(time.perf_counter() - t, 1)
        log(f"LLM alone solves {sum(solves)} of {len(solves)} train items")
    if cfg.references == "llm":
        assert answers is not None
        train_items = llm_references(train_items, answers)
        solves = [True] * len(train_items)  # rule 2 holds on every kept item
        log(f"references: the LLM's own answers to those {len(train_items)} items")
    t = time.perf_counter()
    train, hit_t = collect_cached(slm, llm, tok, train_items, work / "collect", "train")
    val, hit_v = collect_cached(slm, llm, tok, val_items, work / "collect", "validation")
    timing["collect_s"] = round(time.perf_counter() - t, 1)
    if FEATURE_TOKEN_CLASS in cfg.features:  # the drafted token's class per id
        train.token_classes = val.token_classes = class_table(tok, slm.info.vocab_size)
    log(
        f"collect: train {len(train)} rows / {train.n_items} items, validation {len(val)} rows "
        f"({'cached' if hit_t and hit_v else 'collected'}) in {timing['collect_s']} s"
    )

    dec_items = list(val_items[: cfg.val_decode_items])
    t = time.perf_counter()
    ref = reference_accuracy(engines, dec_items, cfg.rollout) if dec_items else {}
    timing["val_reference_s"] = round(time.perf_counter() - t, 1)
    log(f"validation reference ({len(dec_items)} items): {json.dumps(ref)}")

    def validate(r: int, model: CiterMLP) -> dict[str, Any]:
        if not dec_items:
            return {}
        ths = thresholds_for_shares(scores(model, val.inputs(cfg.features)), cfg.val_shares)
        router = CiterRouter(model, features=cfg.features, token_classes=val.token_classes)
        return {
            "val": [
                {
                    "target": q,
                    "threshold": round(th, 4),
                    **decode_accuracy(engines, dec_items, router, th, cfg.rollout),
                }
                for q, th in zip(cfg.val_shares, ths, strict=True)
            ]
        }

    t = time.perf_counter()
    rounds = run_rounds(
        train,
        val,
        engines,
        cfg.fit,
        cfg.loop,
        cfg.rollout,
        validate=validate,
        ckpt_dir=work / "rounds",
        log=log,
        features=cfg.features,
        llm_solves=solves,
    )
    timing["rounds_s"] = round(time.perf_counter() - t, 1)

    final = rounds[-1]
    base = base_labels(train, cfg.loop, solves)
    stats = label_stats(base).to_json()
    if cfg.loop.same_token_slm:  # rows where both models draft the same token went to the SLM
        stats["same_token_slm"] = True
    if cfg.loop.rollout_compare:  # LLM only where forcing its token rescues the answer
        stats["rollout_compare"] = True
    if cfg.loop.judge_llm_rows:  # rule 2's rows went to the rollout pool, not to LLM
        stats["llm_rows_rolled_out"] = True
    if solves is not None:
        stats["llm_solves_items"] = sum(solves)
        rule2 = (train.llm == train.ref) & (train.slm != train.ref)
        stats["rule2_demoted"] = int(rule2.sum()) - stats["llm"]  # LLM fails the item: SLM
    meta = {
        "cost_lambda": cfg.fit.cost_lambda,
        "seed": cfg.fit.seed,
        "train_items": train.n_items,
        "train_rows": len(train),
        "validation_items": val.n_items,
        "rounds": len(rounds) - 1,
        "converged": bool(final.log.get("converged")),
        "objective": "cost-aware weighted BCE (router_models/train/train.py)",
        "labels": stats,
        "references": cfg.references,
        # Per-round convergence evidence; timings stay out so the card is reproducible.
        "round_log": [{k: v for k, v in r.log.items() if not k.endswith("_s")} for r in rounds],
    }
    _save(cfg.out, final.model, val, cfg, engines, pins, {**meta, "policy": "citer"})
    log(f"card: {cfg.out}")
    report: dict[str, Any] = {
        "config": _config_json(cfg),
        "validation_reference": ref,
        "labels": stats,
        "rounds": [r.log for r in rounds],
        "card": cfg.out,
    }
    if cfg.baselines:
        t = time.perf_counter()
        report["baselines"] = _baselines(cfg, rounds, train, val, engines, pins, meta, log)
        timing["baselines_s"] = round(time.perf_counter() - t, 1)
    if cfg.ablation:
        t = time.perf_counter()
        embed = getattr(getattr(slm, "model", None), "get_input_embeddings", lambda: None)()
        weight = None if embed is None else embed.weight.detach().float().cpu()
        report["feature_ablation"] = feature_ablation(train, final.labels, cfg.fit, weight)
        timing["ablation_s"] = round(time.perf_counter() - t, 1)
        log(f"feature ablation: {json.dumps(report['feature_ablation'])}")
    report["timing"] = timing
    work.mkdir(parents=True, exist_ok=True)
    (work / "train_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def _save(
    out: str | Path,
    model: CiterMLP,
    val: Collection,
    cfg: TrainConfig,
    engines: tuple[Any, Any, Any],
    pins: dict[str, str],
    training: dict[str, Any],
) -> None:
    slm = engines[0]
    val_scores = scores(model, val.inputs(cfg.features))
    table = calibration_table(val_scores)
    default = 0.5
    if cfg.default_share is not None:
        default = float(f"{thresholds_for_shares(val_scores, [cfg.default_share])[0]:.6g}")
    save_card(
        out,
        model,
        slm=cfg.slm,
        llm=cfg.llm,
        hidden_size=slm.info.hidden_size,
        vocab_size=slm.info.vocab_size,
        **pins,
        features=cfg.features,
        default_threshold=default,
        calibration=table,
        training={**training, "default_share": cfg.default_share},
        token_classes=val.token_classes,
    )


def _baselines(
    cfg: TrainConfig,
    rounds: list[Round],
    train: Collection,
    val: Collection,
    engines: tuple[Any, Any, Any],
    pins: dict[str, str],
    meta: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    cards = Path(cfg.work_dir) / "cards"
    _save(
        cards / "citer_s",
        rounds[0].model,
        val,
        cfg,
        engines,
        pins,
        {**meta, "policy": "citer_s", "rounds": 0},
    )
    _save(
        cards / "citer_round1",
        rounds[min(1, len(rounds) - 1)].model,
        val,
        cfg,
        engines,
        pins,
        {**meta, "policy": "citer_round1", "rounds": 1},
    )
    y = baselines.slm_failures(train, engines, cfg.query_items, cfg.rollout)
    qmodel, _ = baselines.fit_query_router(train, y, cfg.fit)
    vfirst = val.first_rows()
    qcal = calibration_table(scores(qmodel, val.hidden[vfirst]))  # share of queries, not tokens
    save_card(
        cards / "query",
        qmodel,
        slm=cfg.slm,
        llm=cfg.llm,
        hidden_size=engines[0].info.hidden_size,
        vocab_size=engines[0].info.vocab_size,
        **pins,
        default_threshold=0.5,
        calibration=qcal,
        training={
            **meta,
            "policy": "query",
            "granularity": "one decision per request",
            "input": "SLM hidden at the last prompt token",
            "label": "SLM-only answer wrong",
            "items": len(y),
        },
    )
    out = {
        "cards": str(cards),
        "query_items": len(y),
        "query_slm_fail_rate": round(float(y.float().mean()), 4),
    }
    log(f"baseline cards: {json.dumps(out)}")
    return out


def _config_json(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["val_shares"] = list(cfg.val_shares)
    d["features"] = list(cfg.features)
    return d
