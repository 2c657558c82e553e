"""Which model writes a sequence's next positions this step (plain Python, no torch).

all-LLM      threshold -inf (the ``llm`` model), or a router whose score is a
             constant above the threshold: the LLM runs ahead alone, no SLM pass
speculative  every position goes to the LLM as well, but while the batch allows
             (``engines.draft_gate``) and the LLM verifies a
             window in one pass, the SLM drafts and the LLM verifies; otherwise
             (a larger batch, an LLM without one-pass verify, a grammar, which
             turns verifying off) the LLM decodes it alone, with the same tokens
routed       the SLM drafts, the router sends some positions to the LLM
"""

from __future__ import annotations

from engines.draft_gate import DraftGate
from engines.scheduler_config import SchedulerConfig
from engines.sequence import Sequence


def all_llm(s: Sequence, const_score: float | None) -> bool:
    """Every position to the LLM, no drafts (speculative sequences draft)."""
    if s.req.routing.speculative:
        return False
    return s.threshold == float("-inf") or (const_score is not None and const_score > s.threshold)


def speculative_drafts(cfg: SchedulerConfig, llm_verifies: bool, gate: DraftGate,
                       seqs: list[Sequence]) -> bool:  # fmt: skip
    """Whether speculative sequences draft in a step over ``seqs``: drafts pay only where
    one LLM pass settles a window (else each costs a pass), up to the gate's batch."""
    if not (cfg.verify and llm_verifies):
        return False
    return gate.drafts(len(seqs), any(s.req.routing.speculative for s in seqs))


def llm_alone(s: Sequence, const_score: float | None, drafts: bool) -> bool:
    """The LLM writes the sequence's next positions without an SLM pass this step
    (while the LLM ceilings allow it: ``Sequence.llm_allowed``)."""
    spec_alone = s.req.routing.speculative and (not drafts or s.grammar is not None)
    return all_llm(s, const_score) or spec_alone


def llm_token_score(s: Sequence, const_score: float | None, score: float) -> float | None:
    """The score an LLM token carries: the router's constant for all-LLM and speculative
    sequences (whose drafting depends on the batch), else the router's score there."""
    return const_score if all_llm(s, const_score) or s.req.routing.speculative else score
