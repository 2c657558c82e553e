"""Routing labels per collection row (design notes, "Router training").

Label values follow the router's score convention (score = P(LLM needed)):
``SLM = 0`` keep the SLM's token, ``LLM = 1`` the LLM writes it, and
``ROLLOUT = -1`` marks rows the shortcut rules cannot decide.

Shortcut rules, in order (no model call needed):
  1. SLM argmax == reference token -> SLM (the SLM stays on the reference path)
  2. else LLM argmax == reference  -> LLM (only the LLM stays on it), but only
     on items the LLM alone answers right (``llm_solves``); on the others no
     answer is at stake, so the cost-aware choice is the cheaper SLM. Without
     that check the router learns to spend LLM tokens where the LLM fails too
     (on pair v2: the compare family, LLM at chance, drew 25% LLM share against
     16% on arithmetic at the same threshold).
  3. else                          -> ROLLOUT: decode from prefix + SLM token with
     the current policy; the verifier's verdict on the final answer decides
     (right -> SLM, wrong -> LLM).
With ``same_token_slm`` a rule-3 row where both models draft the same token goes to
the SLM without a rollout: the LLM would write that very token, so sending it there
costs LLM time and changes nothing, whatever the rollout's verdict (on the real pair
77% of rule-3 rows are such common divergences from a worked solution).

With compared rollouts a rule-3 row is labelled LLM only where forcing the LLM's
token gives a right answer and forcing the SLM's does not: where both fail, the
continuation (not the token) lost the answer, and the cheaper SLM keeps it.

CITER-S (the no-rollout ablation) labels from agreement alone: SLM iff the
SLM's argmax is the reference token, LLM otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

SLM, LLM, ROLLOUT = 0, 1, -1


def shortcut_labels(
    ref: torch.Tensor,
    slm: torch.Tensor,
    llm: torch.Tensor,
    llm_solves: torch.Tensor | None = None,
    same_token_slm: bool = False,
) -> torch.Tensor:
    """Rules 1-2 per row; [N] int64 in {SLM, LLM, ROLLOUT}.

    ``llm_solves`` ([N] bool, per row: does the LLM alone answer that row's item
    right?) restricts rule 2; None applies rule 2 everywhere. ``same_token_slm``
    labels SLM the rows where both models draft the same token.
    """
    if not ref.shape == slm.shape == llm.shape:
        raise ValueError(f"row counts differ: ref {ref.shape}, slm {slm.shape}, llm {llm.shape}")
    out = torch.full_like(ref, ROLLOUT)
    if llm_solves is None:
        out[llm == ref] = LLM
    else:
        if llm_solves.shape != ref.shape:
            raise ValueError(f"llm_solves has shape {tuple(llm_solves.shape)}, rows {ref.shape}")
        out[(llm == ref) & llm_solves] = LLM
        out[(llm == ref) & ~llm_solves] = SLM
    out[slm == ref] = SLM  # rule 1 wins when both models agree with the reference
    if same_token_slm:
        out[slm == llm] = SLM  # the LLM would write the same token
    return out


def citer_s_labels(ref: torch.Tensor, slm: torch.Tensor) -> torch.Tensor:
    """Agreement-only labels (CITER-S): [N] int64, SLM iff slm == ref."""
    return (slm != ref).long()


def rollout_labels(correct: Sequence[bool]) -> torch.Tensor:
    """Rule 3: the verifier's verdict on each rollout -> [n] SLM if right, LLM if wrong."""
    return torch.tensor([SLM if ok else LLM for ok in correct], dtype=torch.long)


def compared_labels(slm_ok: Sequence[bool], llm_ok: Sequence[bool | None]) -> torch.Tensor:
    """Rule 3 with both actions judged: [n] LLM iff the SLM's token fails and the LLM's wins.

    ``llm_ok`` is None where the LLM's token was not rolled out (the SLM's was right).
    """
    if len(slm_ok) != len(llm_ok):
        raise ValueError(f"{len(slm_ok)} SLM verdicts but {len(llm_ok)} LLM verdicts")
    for s, g in zip(slm_ok, llm_ok, strict=True):
        if not s and g is None:
            raise ValueError("a row whose SLM rollout failed has no LLM rollout")
    return torch.tensor(
        [LLM if (not s and g) else SLM for s, g in zip(slm_ok, llm_ok, strict=True)],
        dtype=torch.long,
    )


@dataclass(frozen=True)
class LabelStats:
    rows: int
    slm: int  # rule 1
    llm: int  # rule 2
    rollout: int  # rule 3 (needs a rollout)

    @property
    def shortcut_frac(self) -> float:
        """Fraction of rows labelled without a rollout."""
        return (self.slm + self.llm) / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, float]:
        return {
            "rows": self.rows,
            "slm": self.slm,
            "llm": self.llm,
            "rollout": self.rollout,
            "shortcut_frac": round(self.shortcut_frac, 4),
        }


def label_stats(labels: torch.Tensor) -> LabelStats:
    return LabelStats(
        rows=int(labels.numel()),
        slm=int((labels == SLM).sum()),
        llm=int((labels == LLM).sum()),
        rollout=int((labels == ROLLOUT).sum()),
    )


def count_flips(old: torch.Tensor, new: torch.Tensor) -> int:
    """Rows whose label changed between two rounds (same rows, same order)."""
    if old.shape != new.shape:
        raise ValueError(f"label vectors differ in shape: {tuple(old.shape)} vs {new.shape}")
    return int((old != new).sum())
