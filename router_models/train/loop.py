"""Policy iteration: label with the current policy, train, repeat until labels settle.

    round 0: CITER-S labels (agreement only)            --fit--> pi_0
    round r: shortcut labels + rollouts of S under pi_{r-1} --fit--> pi_r
             stop when flips(S) / |S| < tol, or after ``rounds`` rounds

S is a seeded sample (fixed for all rounds, so flips compare like with like)
of the rows the shortcut rules cannot decide; each sampled row stands for
|R| / |S| rows in the loss. Only rows of S can change label between rounds,
so the convergence criterion counts flips among them (flips over all labelled
rows are logged too). Round 1 compares with round 0's labels, which mark all
of S ``LLM``: stopping there means the rollouts agreed with CITER-S, a fixed
point. A rollout follows pi_{r-1} at threshold 0.5, the lambda-optimal policy
of the cost-aware loss (see ``train``), or, with ``rollout_share``, from round 2
at the threshold that sends that share of the train rows to the LLM.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from router_models.base import FEATURE_HIDDEN
from router_models.citer import CiterConfig, CiterMLP, CiterRouter
from router_models.token_class import CLASSES
from router_models.train.calibrate import thresholds_for_shares
from router_models.train.collect import Collection
from router_models.train.labels import (
    LLM,
    ROLLOUT,
    citer_s_labels,
    compared_labels,
    count_flips,
    label_stats,
    rollout_labels,
    shortcut_labels,
)
from router_models.train.outcomes import collection_id, outcome_key, round_log
from router_models.train.rollout import RolloutConfig, compared_outcomes, rollout_outcomes
from router_models.train.train import FitConfig, auc, fit_router, rounded, scores

POLICY_THRESHOLD = 0.5  # the lambda-optimal threshold of the cost-aware loss


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 3  # most rounds with rollouts (round 0, CITER-S, comes on top; 0: CITER-S only)
    tol: float = 0.01  # stop once fewer than this fraction of rollout labels flip
    max_rollouts: int = 1500  # |S|: rows sampled from those needing a rollout
    seed: int = 0
    # Rule 2 ("only the LLM stays on the reference") says nothing of whether leaving the
    # path changes the answer; True: roll those rows out too instead of labelling them LLM.
    judge_llm_rows: bool = False
    # True: a row where both models draft the same token is labelled SLM, never rolled out.
    same_token_slm: bool = False
    # True: where the SLM's token fails, roll out the LLM's token too; LLM only if it wins.
    rollout_compare: bool = False
    # Rounds >= 2 roll out under pi_{r-1} at the threshold that sends this share of the
    # train rows (teacher-forced scores) to the LLM, not at 0.5. A cost-aware card can score
    # far below 0.5 at its deployment share (the real pair's: 0.04-0.06 for 25%), and at 0.5
    # its rollouts run SLM-only. Round 1 keeps 0.5: CITER-S scores P(SLM token disagrees),
    # for which 0.5 is the Bayes decision. None: 0.5 in every round.
    rollout_share: float | None = None

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError(f"rounds={self.rounds}: must be >= 0 (0 trains CITER-S only)")
        if not 0.0 <= self.tol < 1.0:
            raise ValueError(f"tol={self.tol}: must be in [0, 1)")
        if self.max_rollouts < 1:
            raise ValueError(f"max_rollouts={self.max_rollouts}: must be >= 1")
        if self.rollout_share is not None and not 0.0 < self.rollout_share < 1.0:
            raise ValueError(f"rollout_share={self.rollout_share}: must be in (0, 1)")


# keyed only when set
LABEL_OPTIONS = ("judge_llm_rows", "same_token_slm", "rollout_compare", "rollout_share")


@dataclass
class Round:
    """One round's policy, the labels it was trained on and its log line."""

    model: CiterMLP
    labels: torch.Tensor  # [N] int64, ROLLOUT where excluded from the loss
    log: dict[str, Any] = field(default_factory=dict)


# Validation hook: (round index, model) -> metrics to log (routed decodes etc.).
Validate = Callable[[int, CiterMLP], dict[str, Any]]


def sample_rollout_rows(
    labels: torch.Tensor, k: int, seed: int, strata: torch.Tensor | None = None
) -> tuple[list[int], torch.Tensor]:
    """A seeded sample S of at most k ROLLOUT rows (ascending) and each row's loss weight.

    Each sampled row stands for the rows of its stratum it was drawn from
    (|R_c| / |S_c|; one stratum without ``strata``, [N] int64). With strata, k is split
    evenly between them, so a rare class (a number the SLM gets wrong) is still rolled out.
    Samples nest: each stratum's rows are shuffled once per seed and S takes a prefix,
    so a larger k keeps every row of a smaller one (and its cached rollouts).
    """
    mult = torch.ones(len(labels))
    need = labels == ROLLOUT
    groups = [need] if strata is None else [need & (strata == c) for c in strata.unique()]
    groups = [g.nonzero().squeeze(-1).tolist() for g in groups]
    groups = [g for g in groups if g]
    picked: list[int] = []
    for c, g in enumerate(groups):
        random.Random(f"{seed}/{c}").shuffle(g)  # per stratum: independent of the others' k
        take = g[: k // len(groups)]
        if take:
            mult[take] = len(g) / len(take)
        picked += take
    return sorted(picked), mult


def llm_share_by_class(labels: torch.Tensor, classes: torch.Tensor) -> dict[str, list[float]]:
    """Class name -> [rows judged LLM / rows rolled out, rows rolled out] over a sample."""
    out: dict[str, list[float]] = {}
    for c in classes.unique().tolist():
        sel = classes == c
        out[CLASSES[c]] = [round(float((labels[sel] == LLM).double().mean()), 4), int(sel.sum())]
    return out


def policy_threshold(model: CiterMLP, x: torch.Tensor, r: int, share: float | None) -> float:
    """Threshold round ``r``'s rollouts follow pi_{r-1} at: 0.5, or from round 2 with a
    ``share``, the score quantile that sends that share of the rows ``x`` to the LLM."""
    if share is None or r < 2:
        return POLICY_THRESHOLD
    return thresholds_for_shares(scores(model, x), [share])[0]


def base_labels(train: Collection, loop: LoopConfig, llm_solves: list[bool] | None) -> torch.Tensor:
    """The shortcut labels under the loop's label options, before rule 2's rows are judged."""
    solves = row_solves(train, llm_solves)
    return shortcut_labels(train.ref, train.slm, train.llm, solves, loop.same_token_slm)


def row_solves(train: Collection, llm_solves: list[bool] | None) -> torch.Tensor | None:
    """Per-item verdicts spread to rows ([N] bool), or None without a check."""
    if llm_solves is None:
        return None
    if len(llm_solves) != train.n_items:
        raise ValueError(f"llm_solves has {len(llm_solves)} verdicts for {train.n_items} items")
    return torch.tensor(llm_solves, dtype=torch.bool)[train.item]


def run_rounds(
    train: Collection,
    val: Collection,
    engines: tuple[Any, Any, Any],
    fit: FitConfig,
    loop: LoopConfig,
    rollout: RolloutConfig,
    *,
    validate: Validate | None = None,
    ckpt_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    features: tuple[str, ...] = (FEATURE_HIDDEN,),
    llm_solves: list[bool] | None = None,
) -> list[Round]:
    """Rounds 0..R; resumes from ``ckpt_dir`` rounds written with the same settings.

    ``llm_solves`` (per train item: the LLM alone answers it right) restricts
    shortcut rule 2 to items where the LLM's token can still win the answer.
    """
    if len(train) == 0:
        raise ValueError("empty collection: the train collection has no rows")
    base = base_labels(train, loop, llm_solves)
    if loop.judge_llm_rows:
        base[base == LLM] = ROLLOUT
    stats = label_stats(base)
    strata = None if train.token_classes is None else train.token_classes[train.slm]
    s_rows, mult = sample_rollout_rows(base, loop.max_rollouts, loop.seed, strata)
    log(f"labels: {json.dumps(stats.to_json())}; rollout sample |S|={len(s_rows)}")
    key = _run_key(train, fit, loop, rollout, features, llm_solves)
    x, vx = train.inputs(features), val.inputs(features)
    rounds: list[Round] = []
    prev_s: torch.Tensor | None = None  # labels of S in the previous round
    for r in range(loop.rounds + 1):
        cached = _load_round(ckpt_dir, r, key, x.shape[1])
        if cached is not None:
            rounds.append(cached)
            log(f"round {r}: resumed {json.dumps(cached.log)}")
            prev_s = cached.labels[s_rows]
            if cached.log.get("converged"):
                break
            continue
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"round": r}
        if r == 0:
            y = citer_s_labels(train.ref, train.slm)  # no rollouts: every row labelled
            keep = torch.ones(len(y), dtype=torch.bool)
            m = torch.ones(len(y))
        else:
            slm, llm, tok = engines
            thr = policy_threshold(rounds[-1].model, x, r, loop.rollout_share)
            policy = CiterRouter(rounds[-1].model, features=features, threshold=thr,
                                 token_classes=train.token_classes)  # fmt: skip
            t1 = time.perf_counter()
            args = (train, s_rows, slm, llm, tok, policy, thr, rollout)
            okey = outcome_key(train, rounds[-1].model, thr, rollout, features)
            olog = round_log(ckpt_dir, r, okey)
            y = base.clone()
            if loop.rollout_compare:
                slm_ok, llm_ok, rstats = compared_outcomes(*args, desc=f"round {r} rollouts",
                                                           log=olog)  # fmt: skip
                y[s_rows] = compared_labels(slm_ok, llm_ok)
                entry.update(llm_forced=rstats["llm_forced"], llm_rescued=rstats["llm_rescued"])
            else:
                slm_ok, rstats = rollout_outcomes(*args, desc=f"round {r} rollouts", log=olog)
                y[s_rows] = rollout_labels(slm_ok)
            entry["rollout_s"] = round(time.perf_counter() - t1, 1)
            keep = y != ROLLOUT
            m = mult
            new_s = y[s_rows]
            flips = count_flips(prev_s, new_s) if prev_s is not None else 0
            if strata is not None:  # per class: share of its rolled-out rows judged LLM
                entry["rollout_llm_by_class"] = llm_share_by_class(new_s, strata[s_rows])
            entry.update(
                rollout_threshold=round(thr, 4),
                rollouts=len(s_rows),
                rollouts_reused=int(rstats["reused"]),
                rollout_right=round(sum(slm_ok) / len(slm_ok), 4) if s_rows else 0.0,
                rollout_llm_share=round(rstats["llm_share"], 4),
                rollout_truncated=int(rstats["truncated"]),
                flips=flips,
                flip_frac_rollout=round(flips / max(1, len(s_rows)), 4),
                flip_frac_all=round(flips / int(keep.sum()), 6),
            )
        t2 = time.perf_counter()
        model, losses = fit_router(x[keep], y[keep], m[keep], fit)
        entry["fit_s"] = round(time.perf_counter() - t2, 1)
        entry["train_loss"] = round(losses[-1], 4)
        vy = citer_s_labels(val.ref, val.slm)
        entry["val_auc_slm_error"] = rounded(auc(scores(model, vx), vy))
        if validate is not None:
            entry.update(validate(r, model))
        converged = r >= 1 and entry["flip_frac_rollout"] < loop.tol  # a fixed point
        entry["converged"] = converged
        entry["round_s"] = round(time.perf_counter() - t0, 1)
        labels = y.clone()
        labels[~keep] = ROLLOUT
        rounds.append(Round(model, labels, entry))
        _save_round(ckpt_dir, r, key, rounds[-1])
        log(f"round {r}: {json.dumps(entry)}")
        prev_s = labels[s_rows]
        if converged:
            break
    return rounds


def _run_key(
    train: Collection,
    fit: FitConfig,
    loop: LoopConfig,
    rollout: RolloutConfig,
    features: tuple[str, ...],
    llm_solves: list[bool] | None = None,
) -> str:
    """Digest of the settings a round depends on (resume only reuses matching rounds)."""
    blob = json.dumps(
        {
            "features": list(features),
            "llm_solves": llm_solves,
            **collection_id(train),
            "sample": "nested",  # S as prefixes of per-stratum shuffles
            "fit": fit.to_json(),
            # the label options join the key only when set: older rounds stay resumable
            "loop": {k: v for k, v in asdict(loop).items() if v or k not in LABEL_OPTIONS},
            "rollout": asdict(rollout),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _save_round(ckpt_dir: str | Path | None, r: int, key: str, rnd: Round) -> None:
    if ckpt_dir is None:
        return
    d = Path(ckpt_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {f"model.{k}": v.contiguous() for k, v in rnd.model.state_dict().items()}
    save_file({**state, "labels": rnd.labels.contiguous()}, str(d / f"round{r}.safetensors"))
    meta = {"key": key, "model": rnd.model.cfg.to_dict(), "log": rnd.log}
    (d / f"round{r}.json").write_text(json.dumps(meta), encoding="utf-8")


def _load_round(ckpt_dir: str | Path | None, r: int, key: str, in_dim: int) -> Round | None:
    if ckpt_dir is None:
        return None
    d = Path(ckpt_dir)
    js, st = d / f"round{r}.json", d / f"round{r}.safetensors"
    if not (js.is_file() and st.is_file()):
        return None
    meta = json.loads(js.read_text(encoding="utf-8"))
    if meta.get("key") != key:
        return None
    t = load_file(str(st))
    model = CiterMLP(CiterConfig.from_dict(meta["model"]))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    model.eval()
    if model.cfg.in_dim != in_dim:
        return None
    return Round(model, t["labels"], meta["log"])
