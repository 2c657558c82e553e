"""Per-request and per-step counters the scheduler keeps (tokens by model, wall time by
part); the gateway bills and exports them, the benchmarks report them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class RequestStats:
    slm_tokens: int = 0  # completion tokens kept from the SLM
    llm_tokens: int = 0  # completion tokens written by the LLM
    # tokens the LLM prefilled to catch up and kept (prompt included; billed)
    llm_input_tokens: int = 0
    slm_input_tokens: int = 0  # tokens the SLM prefilled (prompt, LLM tokens, last draft)
    drafted_tokens: int = 0  # SLM drafts scored by the router (committed or not)
    # Positions routed to the LLM that the SLM wrote because the (remote) LLM failed or
    # was too slow (fail open); counted in slm_tokens too.
    llm_fallback_tokens: int = 0
    forced_tokens: int = 0  # completion tokens the grammar allowed alone (in slm/llm_tokens)
    # LLM tokens at routed positions equal to the SLM's draft there: the LLM agreed, so
    # the drafts after that position, thrown away at the cut, would have stood
    llm_agreed_tokens: int = 0
    # Tokens the LLM was fed and cropped again: drafts fed to verify routed positions past
    # a disagreement (not billed, as the SLM's cropped drafts are not)
    llm_discarded_tokens: int = 0
    queue_s: float = field(default=0.0, compare=False)  # add_request -> batch slot (s)

    @property
    def llm_share(self) -> float:
        total = self.slm_tokens + self.llm_tokens
        return self.llm_tokens / total if total else 0.0


@dataclass
class StepStats:
    """Wall time of one scheduler step, by part (seconds)."""

    slm_s: float = 0.0
    router_s: float = 0.0
    llm_s: float = 0.0
    sched_s: float = 0.0  # bookkeeping: planning, commit, detokenize, emit
    steps: int = 0  # steps that decoded anything (1 or 0 for a single step)
    active: int = 0  # sequences decoded in this step
    drafted: int = 0  # router rows
    committed: int = 0  # tokens committed (all sequences)
    llm_calls: int = 0  # sequences that needed an LLM token (LLM jobs run)
    llm_passes: int = 0  # batched LLM engine calls (more than 1 only while isolating a fault)
    parked: int = 0  # sequences waiting for a deferred LLM pass at the end of the step
    llm_fallbacks: int = 0  # of those, written by the SLM because the LLM failed
    # Speculative sequences' drafts the LLM checked in its passes, and kept (its token
    # there equal to the draft): the acceptance engines.draft_gate follows
    spec_checked: int = 0
    spec_kept: int = 0

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Add the wall time of the block to ``self.<part>`` (seconds)."""
        t = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, part, getattr(self, part) + time.perf_counter() - t)

    def add(self, other: StepStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
