"""Collaborative SLM/LLM decoding, one scheduler step at a time (plain Python, no torch).

Data flow::

    add_request(Request), abort(id) --inbox (thread-safe)--> step():
      admit   inbox -> waiting -> running (at most max_batch); aborted: free both caches
      SLM     slm.step(SeqWork per running sequence: its committed tokens the SLM
              has not seen, n_out = up to `window` drafts) -> drafts + RouterFeatures
      route   router.score(RouterFeatures) -> one score per drafted row (one call)
      commit  keep each sequence's drafts before its first row with score > threshold
              whose position the LLM may write (Sequence.llm_allowed); crop the SLM
              cache to the committed length (a sequence cut short keeps its drafts
              there until its LLM pass settles them); while <= adaptive_max_batch sequences
              run, a sequence cut short drafts 1 next step, one kept whole twice as
              many (<= window)
      park    each sequence cut short parks (it drafts no more) until the LLM pass is
              due (``engines.deferral``; with defer_steps 0, in the same step)
      LLM     llm.step(SeqWork per parked sequence: catch-up on its committed
              tokens the LLM has not seen, n_out = 1) -> the token at the cut; where
              it equals the SLM's draft there, the drafts after it are committed up
              to the next routed one (the prefix is unchanged, so they stand); an
              LLM that verifies is fed those drafts too and samples at every routed
              one, which stands while the LLM agreed at each one before it;
              work a fallible (remote) LLM failed gets the SLM's draft there, or one
              SLM token when there is no draft (all-LLM runs): fail open
      emit    TokenEvent per committed token (id, text delta, source, score, and
              log-probs from the model that wrote it if the request asked);
              finished sequences (eos / stop string / length) free both caches
    step() -> list[TokenEvent]

Invariant (lazy commit): after a step each cache holds a prefix of the committed
tokens (but a parked sequence's SLM cache, which also holds its drafts past the cut
until its LLM pass). Draft j of a sequence sits at absolute position len(tokens) + j and is
sampled from the stream (seed, position), as is the LLM's token there, so the
run-ahead window, the batch and deferral never change which token a position gets.

Structured output (``Request.grammar``, ``engines.grammar``): the SLM's drafts and the
LLM's tokens are sampled under the sequence's grammar mask; a position the grammar
forces (one allowed token) is never routed to the LLM, and the grammar state, like
the caches, holds the committed tokens only.

Which sequences draft and which the LLM decodes alone (all-LLM, speculative, routed):
``engines.modes``; up to which batch speculative sequences draft: ``engines.draft_gate``.

Prompt log-probs (``SamplingParams.prompt_logprobs``, ``engines.prompt_scores``) are scored
at admission, as the prefill; a request with max_tokens 0 ends there.

Fault isolation: an exception in a batched SLM, router or LLM call is retried on
halves of the batch until it is pinned on single sequences (``engines.isolation``);
those end with finish_reason "error" and the others decode on, with the same tokens.
An exception while committing one sequence's tokens fails that sequence alone.

LLM ceilings (``max_llm_tokens``, ``max_llm_share``) are checked per position before it
goes to the LLM, on the tokens before it (``Sequence.llm_allowed``); past them the SLM's
token is kept there.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from engines.deferral import Parking
from engines.draft_gate import DraftGate
from engines.isolation import isolate, rewind
from engines.limits import PairLimits
from engines.llm_phase import LLMJob, fall_back, run_llm
from engines.modes import all_llm, llm_alone, llm_token_score, speculative_drafts
from engines.prompt_scores import prompt_phase
from engines.scheduler_config import SchedulerConfig
from engines.sequence import Sequence
from engines.slm_phase import checked, commit, plan, settle
from engines.stats import RequestStats, StepStats
from engines.types import (
    FINISH_ABORT,
    FINISH_ERROR,
    FINISH_TIMEOUT,
    Engine,
    Request,
    SeqWork,
    TokenEvent,
)

__all__ = ["Scheduler", "SchedulerConfig"]

if TYPE_CHECKING:
    from engines.types import StepOutput
    from router_models.base import Router


class Scheduler:
    def __init__(
        self,
        slm: Engine,
        llm: Engine,
        router: Router,
        tokenizer: Any,
        config: SchedulerConfig | None = None,
    ) -> None:
        self.slm, self.llm, self.router, self.tokenizer = slm, llm, router, tokenizer
        self.config = config or SchedulerConfig()
        self.limits = PairLimits.of(slm, llm, router, tokenizer, self.config.max_tokens_cap)
        self.eos_ids, self.vocab = self.limits.eos_ids, self.limits.vocab
        self.max_context = self.limits.max_context
        # structured output: None when the pair cannot mask, and why (a 400 quotes it)
        self.grammars, self.no_grammar = self.limits.grammars, self.limits.why_not
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()  # guards _inbox and _ids (callers live on other threads)
        self._inbox: deque[tuple[str, Any]] = deque()
        self._ids: set[str] = set()  # ids of requests not yet finished
        self._added: dict[str, float] = {}  # id -> time.monotonic() of add_request
        self.admitted: list[str] = []  # ids that got a batch slot in the latest step
        self.waiting: deque[Request] = deque()
        self.running: dict[str, Sequence] = {}
        self.parked = Parking(self.config.defer_steps, self.config.defer_fill)
        cfg = self.config
        self.draft_gate = DraftGate(cfg.speculative_max_batch, cfg.speculative_costs, cfg.window)
        self._step_no = 0
        self._next_seq = 0
        self.last = StepStats()  # the latest step
        self.totals = StepStats()  # summed over all steps

    # -- requests ------------------------------------------------------------
    def validate(self, req: Request) -> None:
        """Raise ValueError naming the bad field and its allowed range."""
        self.limits.validate(req)

    def add_request(self, req: Request) -> None:
        """Queue a request; bad input raises here, before any engine work."""
        self.validate(req)
        with self._lock:
            if req.request_id in self._ids:
                raise ValueError(f"request_id={req.request_id!r}: already in use")
            self._ids.add(req.request_id)
            self._added[req.request_id] = time.monotonic()
            self._inbox.append(("add", req))

    def abort(self, request_id: str) -> None:
        """Drop a request at the start of the next step (unknown ids are ignored)."""
        with self._lock:
            self._inbox.append(("abort", request_id))

    def has_work(self) -> bool:
        return bool(self._inbox or self.waiting or self.running)

    def num_waiting(self) -> int:
        """Requests added but not decoding yet (inbox + waiting); any thread may ask."""
        with self._lock:
            added = sum(kind == "add" for kind, _ in self._inbox)
        return added + len(self.waiting)

    # -- the step ------------------------------------------------------------
    def step(self) -> list[TokenEvent]:
        """One step over every running sequence. An exception in a batched call fails
        only the sequences it can be pinned on (``engines.isolation``); the others get
        their tokens from smaller batches in the same step."""
        t0 = time.perf_counter()
        stats = StepStats()
        events = self._admit()
        self._step_no += 1
        seqs = list(self.running.values())
        if seqs:
            solo: list[Sequence] = []  # the LLM writes every token: no SLM pass
            duo: list[Sequence] = []
            drafts = speculative_drafts(self.config, self.llm.info.verifies, self.draft_gate,
                                        seqs)  # fmt: skip
            for s in seqs:  # one pass; `in` on Sequence dataclasses would compare tokens
                if s.request_id not in self.parked:
                    alone = llm_alone(s, self._const_score, drafts) and s.llm_allowed()
                    (solo if alone else duo).append(s)
            new: list[LLMJob] = []
            adapt = len(seqs) <= self.config.adaptive_max_batch
            drafted, failed = isolate(duo, lambda g: self._draft(g, stats, adapt), self._undo_slm)
            for group, (work, out, scores) in drafted:
                new += commit(self.slm, group, work, out, scores, events, self._llm_score,
                              self.config.window if adapt else 0)  # fmt: skip
                stats.drafted += len(scores)
            # The LLM writes as many positions in a row as the ceilings let it (>= 1).
            window = self.config.window
            new += [LLMJob(s, self._const_score, s.llm_run(s.draft_len(window))) for s in solo]
            self.parked.park(new, self._step_no)
            jobs = self.parked.due(sum(s.finish_reason is None for s in seqs), self._step_no)
            done, lost = [], []
            if jobs:  # an SLM-only step spends no LLM time, not even the empty call's
                with stats.timed("llm_s"):
                    done, lost = isolate(
                        jobs, lambda g: self._llm(g, events, stats), self._undo_llm
                    )
            orphans = [job for _, group_orphans in done for job in group_orphans]
            if orphans:  # a failed all-LLM call has no SLM draft: the SLM writes it now
                with stats.timed("slm_s"):
                    _, lost_too = isolate(
                        orphans, lambda g: fall_back(self.slm, g, events), self._undo_slm
                    )
                lost += lost_too
            for item, error in [*failed, *lost]:
                s = item if isinstance(item, Sequence) else item.seq
                events.append(s.fail(error))
            settle(self.slm, jobs, events)  # the SLM caches keep the drafts that stood
            self.draft_gate.observe(stats.spec_kept, stats.spec_checked)
            self._emit(seqs)
            stats.steps, stats.active, stats.parked = 1, len(seqs), len(self.parked)
            stats.llm_calls = len(jobs)
            stats.llm_fallbacks = sum(e.fallback for e in events)
            stats.committed = sum(e.token_id is not None for e in events)
        stats.sched_s = time.perf_counter() - t0 - stats.slm_s - stats.router_s - stats.llm_s
        self.last = stats
        self.totals.add(stats)
        return events

    def _draft(
        self, seqs: list[Sequence], stats: StepStats, adapt: bool
    ) -> tuple[list[SeqWork], StepOutput, list[float]]:
        """One SLM pass (drafts) and one router call over ``seqs``."""
        work = plan(seqs, self.config.window, adapt)
        with stats.timed("slm_s"):
            out = self.slm.step(work, tuple(self.router.features))
        with stats.timed("router_s"):
            scores = self.router.score(out.features)
        return work, out, checked(seqs, work, out, scores)

    def _llm(self, jobs: list[LLMJob], events: list[TokenEvent], stats: StepStats) -> list[LLMJob]:
        stats.llm_passes += 1
        return run_llm(self.llm, jobs, events, self.config.verify, stats)

    def _undo_slm(self, items: list[Any]) -> None:
        """After a failed SLM call: each cache back to the tokens the SLM had seen."""
        seqs = [i if isinstance(i, Sequence) else i.seq for i in items]
        rewind(self.slm, [(s.seq_id, s.slm_seen) for s in seqs])

    def _undo_llm(self, jobs: list[LLMJob]) -> None:
        rewind(self.llm, [(j.seq.seq_id, j.seq.llm_seen) for j in jobs])

    def _admit(self) -> list[TokenEvent]:
        """Apply adds and aborts, end waiting requests past their deadline, then fill
        free batch slots in FIFO order (their ids go to ``self.admitted``)."""
        events: list[TokenEvent] = []
        with self._lock:
            inbox, self._inbox = list(self._inbox), deque()
        for kind, item in inbox:
            if kind == "add":
                self.waiting.append(item)
            elif item in self.running:
                s = self.running.pop(item)
                self.parked.drop(item)
                self._free(s)
                events.append(TokenEvent(item, None, "", None, None, FINISH_ABORT, s.stats))
            elif any(r.request_id == item for r in self.waiting):
                self._unqueue(item, FINISH_ABORT, events)
        now = time.monotonic()
        for r in [r for r in self.waiting if r.deadline is not None and now > r.deadline]:
            self._unqueue(r.request_id, FINISH_TIMEOUT, events)
        self.admitted = []
        while self.waiting and len(self.running) < self.config.max_batch:
            req = self.waiting.popleft()
            seed = req.sampling.seed
            seed = self._rng.getrandbits(63) if seed is None else seed
            thr = req.routing.threshold
            thr = self.router.default_threshold if thr is None else thr
            thr = float("-inf") if req.routing.speculative else thr
            try:
                grammar = None
                if req.grammar is not None:
                    assert self.grammars is not None  # validate() refused it otherwise
                    grammar = self.grammars.start(req.grammar)
                s = Sequence.start(self._next_seq, req, seed, thr, self.max_context,
                                   self.tokenizer, self.eos_ids, grammar)  # fmt: skip
            except Exception as e:  # e.g. the detokenizer refused its stop strings
                self._forget(req.request_id)
                why = f"{type(e).__name__}: {e}"
                events.append(TokenEvent(req.request_id, None, "", None, None, FINISH_ERROR,
                                         error=why))  # fmt: skip
                continue
            s.stats.queue_s = now - self._added.pop(req.request_id, now)
            self.admitted.append(req.request_id)
            self._next_seq += 1
            if req.sampling.prompt_logprobs is not None or not req.sampling.max_tokens:
                llm_scores = all_llm(s, self._const_score) or s.req.routing.speculative
                if prompt_phase(self.slm, self.llm, self.router, s, llm_scores, events):
                    self._free(s)  # no completion asked, or its prompt scoring failed
                    continue
            self.running[req.request_id] = s
        return events

    def _unqueue(self, request_id: str, reason: str, events: list[TokenEvent]) -> None:
        """End a request that never got a batch slot (nothing ran, nothing to free)."""
        self.waiting = deque(r for r in self.waiting if r.request_id != request_id)
        waited = time.monotonic() - self._added.pop(request_id, time.monotonic())
        self._forget(request_id)
        stats = RequestStats(queue_s=waited)
        events.append(TokenEvent(request_id, None, "", None, None, reason, stats))

    def _llm_score(self, s: Sequence, score: float) -> float | None:
        return llm_token_score(s, self._const_score, score)

    @property
    def _const_score(self) -> float | None:
        return self.router.constant_score

    def _emit(self, seqs: list[Sequence]) -> None:
        """Release finished sequences: both caches and the slot, in this step."""
        for s in seqs:
            if s.finish_reason is not None:
                del self.running[s.request_id]
                self._free(s)

    def _free(self, s: Sequence) -> None:
        self.slm.free(s.seq_id)
        self.llm.free(s.seq_id)
        self._forget(s.request_id)

    def _forget(self, request_id: str) -> None:
        with self._lock:
            self._ids.discard(request_id)
