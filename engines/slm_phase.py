"""The SLM phase of a scheduler step: plan drafts, check the router's answer, commit.

    plan     SeqWork per sequence: its committed tokens the SLM has not seen,
             n_out = up to `window` drafts, under the sequence's grammar if it has one
    checked  one router score per drafted row; counts what the SLM prefilled
    commit   keep each sequence's drafts before its first row with score > threshold
             whose position the LLM may write (Sequence.llm_allowed) and the grammar
             does not force (StepOutput.forced); crop the SLM
             cache to the committed length; an LLMJob for each sequence cut short

Plain Python, no torch. ``commit`` fails only the sequence whose commit raised (its
final event says why); the scheduler runs ``plan``/``checked`` under
``engines.isolation`` so they must leave nothing behind when an engine call raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engines.llm_phase import LLMJob
from engines.sequence import Sequence, kept_prefix
from engines.types import Engine, SeqWork, StepOutput, TokenEvent


def plan(seqs: list[Sequence], window: int, adapt: bool = False) -> list[SeqWork]:
    """One SeqWork per sequence: up to ``window`` drafts, or its adaptive cap."""
    return [
        SeqWork(s.seq_id, s.slm_seen, s.tokens[s.slm_seen :], s.req.sampling, s.seed,
                s.draft_len(s.draft_cap if adapt and s.draft_cap else window),
                grammar=s.grammar)
        for s in seqs
    ]  # fmt: skip


def checked(
    seqs: list[Sequence], work: list[SeqWork], out: StepOutput, scores: list[float]
) -> list[float]:
    """The scores, once they match the drafted rows; the SLM's prefill is counted."""
    rows = sum(map(len, out.tokens))
    if len(scores) != rows:
        raise ValueError(f"router returned {len(scores)} scores for {rows} rows")
    for s, w in zip(seqs, work, strict=True):
        s.stats.slm_input_tokens += len(w.new_tokens)
    return scores


def commit(
    slm: Engine,
    seqs: list[Sequence],
    work: list[SeqWork],
    out: StepOutput,
    scores: list[float],
    events: list[TokenEvent],
    llm_score: Callable[[Sequence, float], float | None],
    adapt: int = 0,
) -> list[LLMJob]:
    """Commit drafts up to each sequence's first LLM-routed row that the LLM may
    write; return the LLM jobs of the sequences whose next token the LLM writes.
    ``llm_score(seq, score at the cut)``: the score the LLM's token will carry.
    ``adapt`` > 0: each sequence's next draft cap adapts (Sequence.adapt_window)."""
    need: list[LLMJob] = []
    row = 0
    for k, (s, w, toks) in enumerate(zip(seqs, work, out.tokens, strict=True)):
        sc = scores[row : row + len(toks)]
        row += len(toks)
        lps = out.logprobs[k] if out.logprobs else []
        forced = out.forced[k] if out.forced else [False] * len(toks)
        try:
            cut = _commit_one(slm, s, w, toks, sc, lps, forced, events)
        except Exception as e:  # this sequence's tokens only (detokenizer, stop strings)
            events.append(s.fail(e))
            continue
        if cut is not None:
            rest = [(toks[j], sc[j], lps[j] if lps else None, forced[j])
                    for j in range(cut + 1, len(toks))]  # fmt: skip
            need.append(LLMJob(s, llm_score(s, sc[cut]), 1, toks[cut], lps[cut] if lps else None,
                               rest, [llm_score(s, x) for _, x, _, _ in rest],
                               slm_cached=True))  # fmt: skip
        if adapt:
            s.adapt_window(cut is not None, adapt)
    return need


def settle(slm: Engine, jobs: list[LLMJob], events: list[TokenEvent]) -> None:
    """After the LLM pass over ``jobs``: each SLM cache, which kept its drafts past the
    cut (the draft there and the rest but the last, never fed), keeps what the LLM's
    tokens left committed, short of the last committed token; it catches up on the rest.
    An exception fails that sequence alone."""
    for job in jobs:
        s = job.seq
        if not job.slm_cached or s.finish_reason is not None:
            continue  # nothing held back, or finished: both caches are freed this step
        job.slm_cached = False
        fed = [job.draft, *(t for t, *_ in job.rest)][: len(job.rest)]
        s.slm_seen += kept_prefix(fed, s.tokens[s.slm_seen :])  # slm_seen stayed at the cut
        try:
            if slm.cache_len(s.seq_id) > s.slm_seen:
                slm.crop(s.seq_id, s.slm_seen)
        except Exception as e:  # this sequence only
            events.append(s.fail(e))


def _commit_one(
    slm: Engine,
    s: Sequence,
    w: SeqWork,
    toks: list[int],
    sc: list[float],
    lps: list[Any],
    forced: list[bool],
    events: list[TokenEvent],
) -> int | None:
    """Commit one sequence's drafts; the row the LLM writes next, or None. A row the
    grammar forces (one allowed token) is never routed: the LLM could only agree."""
    s.stats.drafted_tokens += len(toks)
    cached = w.start + len(w.new_tokens) + len(toks) - 1  # the last draft was never fed
    routed = (i for i, x in enumerate(sc) if x > s.threshold and not forced[i] and s.llm_allowed(i))
    cut = next(routed, len(toks))
    for j in range(cut):
        events.append(s.commit(toks[j], "slm", sc[j], lps[j] if lps else None, False, forced[j]))
        if s.finish_reason:
            break
    s.slm_seen = min(cached, len(s.tokens))
    job = s.finish_reason is None and cut < len(toks)
    if s.slm_seen < cached and not job:
        slm.crop(s.seq_id, s.slm_seen)  # lazy commit: uncommitted drafts leave
    return cut if job else None
