"""The scheduler's settings: batch, run-ahead window, deferral, adaptive run-ahead, verify,
speculative decoding's batch limit
(``engines.scheduler``; the gateway reads them from ``CITER_*`` settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engines.spec_probe import ProbeRow


@dataclass(frozen=True)
class SchedulerConfig:
    # k: SLM run-ahead drafts per step (1 = no run-ahead). With verify one LLM pass
    # settles the whole window, so longer windows pay (8 beat 4 at c = 1..64, BENCHMARKS.md).
    window: int = 8
    max_batch: int = 16  # sequences decoded together; the rest wait in FIFO order
    max_tokens_cap: int = 1024  # the largest max_tokens a request may ask for
    seed: int | None = None  # draws the seeds of requests that give none (None: OS entropy)
    # Deferred LLM batching: a sequence routed to the LLM parks (it stops drafting) and
    # the LLM pass runs once parked >= defer_fill x running, or the oldest parked
    # sequence has waited defer_steps steps, or nothing is left to draft.
    defer_steps: int = 0  # 0: the LLM runs in the step that routed the position
    defer_fill: float = 0.5
    # Adaptive run-ahead per sequence (Sequence.adapt_window) while at most this many
    # sequences run: 1 draft after a cut, doubling after each uncut step up to `window`.
    # 0 (off): since one LLM pass verifies a whole window, short windows after a cut
    # only cost passes (c=1: 1.26x adaptive vs 1.42x fixed, BENCHMARKS.md).
    adaptive_max_batch: int = 0
    # One LLM pass verifies every routed position of a drafted window (an engine with
    # EngineInfo.verifies: fed the drafts after the cut, it samples at each routed one;
    # each counts while the ones before it agreed). Off: one routed position per pass.
    verify: bool = True
    # Speculative requests (RoutingParams.speculative) draft while at most this many
    # sequences run; above it the LLM decodes them alone, as vLLM's
    # speculative_disable_by_batch_size does. Their tokens are the same either way.
    # 1: on the real pair on 2 AVX-512 cores drafting paid alone (1.38x) and cost from
    # two sequences (0.92x at 2, 0.81x at 8; BENCHMARKS.md). The gateway's default times
    # it on the machine instead (CITER_SPECULATIVE_MAX_BATCH=auto, engines.spec_probe).
    speculative_max_batch: int = 1
    # The start-up probe's pass times (engines.spec_probe.SpecProbe.rows): with them the
    # limit follows the share of drafts the LLM keeps (engines.draft_gate); without, it
    # stays speculative_max_batch.
    speculative_costs: tuple[ProbeRow, ...] = ()

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window={self.window}: must be >= 1")
        if self.defer_steps < 0:
            raise ValueError(f"defer_steps={self.defer_steps}: must be >= 0")
        if not 0.0 < self.defer_fill <= 1.0:
            raise ValueError(f"defer_fill={self.defer_fill}: must lie in (0, 1]")
        if self.adaptive_max_batch < 0:
            raise ValueError(f"adaptive_max_batch={self.adaptive_max_batch}: must be >= 0")
        if self.speculative_max_batch < 0:
            raise ValueError(f"speculative_max_batch={self.speculative_max_batch}: must be >= 0")
        if self.max_batch < 1:
            raise ValueError(f"max_batch={self.max_batch}: must be >= 1")
        if self.max_tokens_cap < 1:
            raise ValueError(f"max_tokens_cap={self.max_tokens_cap}: must be >= 1")
