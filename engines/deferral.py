"""Deferred LLM batching: sequences routed to the LLM wait here for a fuller pass.

A sequence whose next position the router sends to the LLM parks (it drafts no
more); the scheduler runs one LLM pass over every parked sequence once the pass is
due (``Parking.due``):
- parked >= fill x live sequences (drafting + parked), or
- the oldest parked sequence has waited ``steps`` steps (0: due in the step that
  parked it, which is no deferral), or
- no sequence is left to draft.
Plain Python. Deferral changes when a position is written, never which token it gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engines.llm_phase import LLMJob


class Parking:
    def __init__(self, steps: int, fill: float) -> None:
        self.steps, self.fill = steps, fill
        self.jobs: dict[str, tuple[LLMJob, int]] = {}  # request id -> (its job, step parked)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self.jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.jobs)

    def park(self, jobs: Iterable[LLMJob], step_no: int) -> None:
        self.jobs.update((j.seq.request_id, (j, step_no)) for j in jobs)

    def drop(self, request_id: str) -> None:
        self.jobs.pop(request_id, None)

    def due(self, live: int, step_no: int) -> list[LLMJob]:
        """All parked jobs if their pass is due at the end of step ``step_no`` (``live``:
        unfinished running sequences, parked included), else none."""
        if not self.jobs:
            return []
        parked = len(self.jobs)
        oldest = min(at for _, at in self.jobs.values())
        if live <= parked or step_no - oldest >= self.steps or parked >= self.fill * live:
            jobs = [job for job, _ in self.jobs.values()]
            self.jobs.clear()
            return jobs
        return []
