"""The LLM phase of a scheduler step, and its fail-open path (plain Python, no torch).

    jobs (LLMJob: a cut of a routed sequence, or an all-LLM run of up to `window`)
      run_llm   llm.step(SeqWork per job: catch-up on the committed tokens the LLM has
                not seen + n_out tokens) -> commit them as "llm"
                an LLM that verifies (EngineInfo.verifies) is also fed the drafts
                after the cut up to the last routed one and samples at each routed
                position; they count while every earlier LLM token equals its draft
                an LLM that cannot mask (remote) has its tokens checked against the
                sequence's grammar; the first refused one ends its tokens there, and
                a refused first token counts as a failure:
                a job the LLM failed (a fallible engine: remote, slow or down):
                  with an SLM draft at the cut -> commit that draft (fallback)
                  without one (all-LLM run)   -> returned to fall_back
      fall_back slm.step(catch-up + 1 token) per such job -> commit it (fallback)

Both functions commit per sequence: an exception while committing one sequence's
tokens fails that sequence alone. An exception from the engine call itself leaves
nothing committed, so the scheduler can retry smaller batches (``engines.isolation``).

Invariant: a failed LLM job changes neither the LLM's cache nor ``llm_seen``, so
the next call catches up on the same tokens plus those committed since (a job whose
first token the grammar refused keeps the catch-up it was sent, nothing more). A
fallback token is the SLM's own sample at that position (stream (seed, position)),
so an LLM that always fails turns any policy into exactly always-SLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engines.sequence import Sequence, kept_prefix
from engines.stats import StepStats
from engines.types import Engine, SeqWork, TokenEvent, TokenLogprob


@dataclass
class LLMJob:
    """One sequence's LLM call in a step."""

    seq: Sequence
    score: float | None  # router score at its positions (the constant for all-LLM runs)
    n_out: int  # positions the LLM writes in a row: 1 at a cut, up to window when solo
    draft: int | None = None  # the SLM's draft at the cut: the fail-open token
    draft_lp: TokenLogprob | None = None  # its log-probs, if the request asked
    # The drafts after the cut, (token, router score, log-probs, forced) each: where the
    # LLM writes the SLM's own draft at the cut, the prefix is unchanged, so they stand
    # as drafted (same seeds, same scores) up to the next position the LLM must write.
    rest: list[tuple[int, float, TokenLogprob | None, bool]] = field(default_factory=list)
    # Per rest entry, the score the LLM's token there carries (as ``score`` at the cut).
    rest_llm_scores: list[float | None] = field(default_factory=list)
    # The SLM's cache still holds the draft at the cut and the rest but the last, past
    # slm_seen (the cut), until ``slm_phase.settle`` keeps what the LLM's pass committed.
    slm_cached: bool = False


def run_llm(
    llm: Engine,
    jobs: list[LLMJob],
    events: list[TokenEvent],
    verify: bool = True,
    stats: StepStats | None = None,
) -> list[LLMJob]:
    """One batched LLM step over ``jobs``; returns the failed jobs that have no draft.
    ``verify``: settle every routed draft of a job in this pass where the LLM can.
    ``stats``: count the speculative drafts the LLM checked and kept."""
    if not jobs:
        return []
    masks = llm.info.masks
    work = [_work(j, masks, verify and llm.info.verifies) for j in jobs]
    out = llm.step(work)
    failed = out.failed or [None] * len(jobs)
    orphans: list[LLMJob] = []
    for k, (job, w, toks, why) in enumerate(zip(jobs, work, out.tokens, failed, strict=True)):
        s = job.seq
        try:
            if why is None and not masks and s.grammar is not None:
                toks = toks[: s.grammar.valid_prefix(toks)]  # checked, since not masked
                if not toks:  # the LLM saw the catch-up; its token broke the grammar
                    s.stats.llm_input_tokens += len(w.new_tokens)
                    _crop(llm, s, w.start + len(w.new_tokens))
                    why = "grammar"
            if why is not None:  # fail open; the LLM's cache holds committed tokens only
                if job.draft is None:
                    orphans.append(job)
                else:
                    events.append(s.commit(job.draft, "slm", job.score, job.draft_lp, True))
                continue
            lps = out.logprobs[k] if out.logprobs else []
            forced = out.forced[k] if out.forced else [False] * len(toks)
            if w.sample_offsets:  # the cut and the routed drafts but the last, then the last
                assert out.sampled is not None
                toks = out.sampled[k] + toks
                lps = (out.sampled_logprobs[k] if out.sampled_logprobs else []) + lps
                forced = [False] * len(toks)
            kept, llm_tokens = s.stats.llm_agreed_tokens, s.stats.llm_tokens
            _commit_llm(llm, s, job, w, toks, lps, forced, events)
            if stats is not None and job.draft is not None and s.req.routing.speculative:
                # every LLM token of a drafted speculative job sits where a draft did
                stats.spec_kept += s.stats.llm_agreed_tokens - kept
                stats.spec_checked += s.stats.llm_tokens - llm_tokens
        except Exception as e:  # this sequence only: the others' tokens are committed
            events.append(s.fail(e))
    return orphans


def _work(job: LLMJob, masks: bool, verifies: bool) -> SeqWork:
    """The LLM's work for a job: catch-up on the committed tokens it has not seen, then
    the token at the cut. With an engine that verifies, the drafts after the cut up to
    the last one the router also sends to the LLM are fed too and the LLM samples at
    each such position (``SeqWork.sample_offsets``), so one pass settles them all;
    ``_keep_rest`` takes those tokens only while every earlier one agreed."""
    s = job.seq
    new = s.tokens[s.llm_seen :]
    routed = _routed(job) if verifies and s.grammar is None and job.draft is not None else []
    offsets: tuple[int, ...] = ()
    if routed:
        offsets = (len(new) - 1, *(len(new) + m for m in routed[:-1]))
        new = [*new, job.draft, *(t for t, *_ in job.rest[: routed[-1]])]
    return SeqWork(s.seq_id, s.llm_seen, new, s.req.sampling, s.seed, job.n_out,
                   grammar=s.grammar if masks else None, sample_offsets=offsets)  # fmt: skip


def _routed(job: LLMJob) -> list[int]:
    """Indexes into job.rest of the drafts the router sends to the LLM too."""
    return [m for m, (_, score, _, forced) in enumerate(job.rest)
            if score > job.seq.threshold and not forced]  # fmt: skip


def _crop(llm: Engine, s: Sequence, seen: int) -> None:
    s.llm_seen = seen
    if llm.cache_len(s.seq_id) > seen:
        llm.crop(s.seq_id, seen)


def _commit_llm(
    llm: Engine,
    s: Sequence,
    job: LLMJob,
    w: SeqWork,
    toks: list[int],
    lps: list[TokenLogprob],
    forced: list[bool],
    events: list[TokenEvent],
) -> None:
    """Commit the LLM's tokens: an all-LLM run's n_out, or the token at the cut (then,
    where it agreed, the drafts after it and the verified routed positions)."""
    # What the LLM's cache holds from w.start: the last token it produced was not fed.
    fed = [*w.new_tokens, *toks[len(w.sample_offsets) : -1]]
    if w.sample_offsets:
        got = zip(toks[1:], lps[1:] or [None] * (len(toks) - 1), strict=True)
        verified = dict(zip(_routed(job), got, strict=True))
        toks, lps, forced = toks[:1], lps[:1], forced[:1]
    else:
        verified = {}
    agreed = bool(toks) and toks[0] == job.draft
    s.stats.llm_agreed_tokens += agreed
    for j, tok in enumerate(toks):
        events.append(s.commit(tok, "llm", job.score, lps[j] if lps else None, False, forced[j]))
        if s.finish_reason:
            break
    if agreed and s.finish_reason is None:
        _keep_rest(s, job, events, verified)
    s.llm_seen = w.start + kept_prefix(fed, s.tokens[w.start :])
    kept = min(s.llm_seen, w.start + len(w.new_tokens)) - w.start  # of the new tokens
    s.stats.llm_input_tokens += kept
    s.stats.llm_discarded_tokens += len(w.new_tokens) - kept
    if llm.cache_len(s.seq_id) > s.llm_seen:
        llm.crop(s.seq_id, s.llm_seen)  # lazy commit: tokens after a finish or a refusal


def _keep_rest(
    s: Sequence,
    job: LLMJob,
    events: list[TokenEvent],
    verified: dict[int, tuple[int, TokenLogprob | None]],
) -> None:
    """The LLM agreed with the draft at the cut: commit the drafts after it as the SLM's,
    up to the next one the router sends to the LLM (checked against the ceilings as they
    stand now). ``verified`` has the LLM's token there when the same pass sampled it (the
    prefix it saw is the committed one): it is committed, and if it agreed too, on to the
    next. Otherwise the next step drafts and routes that position again. The SLM has
    not seen these drafts (its cache was cropped at the cut): it catches up next pass."""
    for m, (tok, score, lp, forced) in enumerate(job.rest):
        if score > s.threshold and not forced and s.llm_allowed():
            if m not in verified:
                return
            got, got_lp = verified[m]
            s.stats.llm_agreed_tokens += got == tok
            events.append(s.commit(got, "llm", job.rest_llm_scores[m], got_lp, False, False))
            if got != tok or s.finish_reason:
                return
            continue
        events.append(s.commit(tok, "slm", score, lp, False, forced))
        if s.finish_reason:
            return


def fall_back(slm: Engine, jobs: list[LLMJob], events: list[TokenEvent]) -> None:
    """The SLM writes the next position of each job (one batched SLM step)."""
    work = []
    for j in jobs:
        s = j.seq
        new = s.tokens[s.slm_seen :]  # >= 1 token: the last committed one is never fed yet
        work.append(SeqWork(s.seq_id, s.slm_seen, new, s.req.sampling, s.seed, 1,
                            grammar=s.grammar))  # fmt: skip
    out = slm.step(work)
    for k, (j, w, toks) in enumerate(zip(jobs, work, out.tokens, strict=True)):
        j.seq.stats.slm_input_tokens += len(w.new_tokens)
        lps = out.logprobs[k] if out.logprobs else []
        try:
            events.append(j.seq.commit(toks[0], "slm", j.score, lps[0] if lps else None, True))
        except Exception as e:  # this sequence only
            events.append(j.seq.fail(e))
        j.seq.slm_seen = w.start + len(w.new_tokens)  # the sampled token was not fed
