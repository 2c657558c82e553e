"""Prompt log-probs (``SamplingParams.prompt_logprobs``), scored when a request is admitted.

Teacher forcing through the engines' own caches: the prompt minus its last token goes
in as chunks of probe rows (``SeqWork.probe_offsets``); the row at offset o gives the
log-prob of prompt token o + 1. That is the prefill the sequence needs anyway, so the
caches, ``slm_seen`` / ``llm_seen`` and the prefill counters carry on from it.

Which model scores a prompt position (``scorer``):

    slm    LLM tokens capped at 0 (the ``slm`` model, or an SLM-only budget)
    llm    every position goes to the LLM (the ``llm`` model: threshold -inf)
    routed the SLM's row goes to the router; where its score > the request's threshold
           the LLM's log-prob is taken (the LLM prefills only as far as it is needed)

so a routed request's prompt likelihood is that of the policy that decodes it: at each
position the model the router gives that position. Completion ceilings
(``max_llm_share``) do not apply to prompt positions. Plain Python, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engines.sequence import Sequence
from engines.types import FINISH_LENGTH, Engine, SeqWork, StepOutput, TokenEvent, TokenLogprob

if TYPE_CHECKING:
    from router_models.base import Router

CHUNK = 128  # prompt tokens per probe forward: bounds its [CHUNK, vocab] logits


def scorer(s: Sequence, all_llm: bool) -> str:
    """The model(s) that score the prompt: slm, llm or routed (see the module docstring)."""
    if s.req.routing.max_llm_tokens == 0:
        return "slm"
    return "llm" if all_llm else "routed"


def score_prompt(slm: Engine, llm: Engine, router: Router, s: Sequence, mode: str) -> TokenEvent:
    """Prefill ``s``'s prompt (all but its last token) with probe rows; the prompt event."""
    prompt = s.req.prompt_ids
    lps: list[TokenLogprob | None] = [None] * len(prompt)
    src: list[str | None] = [None] * len(prompt)
    first = "llm" if mode == "llm" else "slm"
    for c0 in range(0, len(prompt) - 1, CHUNK):
        end = min(c0 + CHUNK, len(prompt) - 1)
        out = _probe(slm if first == "slm" else llm, first, s, end, range(c0, end))
        for p, lp in zip(range(c0, end), out.probe_logprobs[0], strict=True):  # type: ignore[index]
            lps[p + 1], src[p + 1] = lp, first
        if mode == "routed":
            scores = router.score(out.probes)
            routed = [p for p, x in zip(range(c0, end), scores, strict=True) if x > s.threshold]
            if routed:
                out = _probe(llm, "llm", s, routed[-1] + 1, routed)
                for p, lp in zip(routed, out.probe_logprobs[0], strict=True):  # type: ignore[index]
                    lps[p + 1], src[p + 1] = lp, "llm"
    return TokenEvent(s.request_id, None, "", None, None, prompt_logprobs=lps, prompt_sources=src)


def _probe(engine: Engine, name: str, s: Sequence, end: int, at: Any) -> StepOutput:
    """Feed the prompt up to ``end`` to ``engine`` (from what it has seen), with probe rows
    predicting prompt positions p + 1 for p in ``at``."""
    seen = s.slm_seen if name == "slm" else s.llm_seen
    prompt = s.req.prompt_ids
    work = SeqWork(
        s.seq_id, seen, prompt[seen:end], s.req.sampling, s.seed,
        probe_offsets=tuple(p - seen for p in at),
        probe_targets=tuple(prompt[p + 1] for p in at),
        probe_logprobs=s.req.sampling.prompt_logprobs,
    )  # fmt: skip
    out = engine.step([work])
    if name == "slm":
        s.slm_seen, s.stats.slm_input_tokens = end, s.stats.slm_input_tokens + end - seen
    else:
        s.llm_seen, s.stats.llm_input_tokens = end, s.stats.llm_input_tokens + end - seen
    return out


def prompt_phase(
    slm: Engine, llm: Engine, router: Router, s: Sequence, all_llm: bool, events: list[TokenEvent]
) -> bool:
    """At admission: the prompt event if the request asks for prompt log-probs. True when
    the request ends here (it asks no completion tokens, or scoring raised): the caller
    frees its caches."""
    try:
        if s.req.sampling.prompt_logprobs is not None:
            events.append(score_prompt(slm, llm, router, s, scorer(s, all_llm)))
    except Exception as e:  # this request alone
        events.append(s.fail(e))
        return True
    if s.req.sampling.max_tokens:
        return False
    s.finish_reason = FINISH_LENGTH
    events.append(TokenEvent(s.request_id, None, "", None, None, FINISH_LENGTH, s.stats))
    return True
