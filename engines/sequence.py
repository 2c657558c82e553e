"""Per-request decoding state: counters over one token list, no phases.

``tokens`` holds the prompt and every committed completion token. Each engine
has seen a prefix of it (``slm_seen`` / ``llm_seen`` = its cache length after
a step); what it has not seen is exactly what it prefills next time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engines.detok import Detokenizer
from engines.stats import RequestStats
from engines.types import (
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP,
    Request,
    TokenEvent,
    TokenLogprob,
)


def kept_prefix(fed: list[int], committed: list[int]) -> int:
    """How many of the tokens a cache was ``fed`` (from some position on) it keeps: the
    longest prefix equal to the ``committed`` tokens from that position, short of the
    last committed one (the next pass needs >= 1 new token to sample after)."""
    n = min(len(fed), len(committed))
    same = next((i for i in range(n) if fed[i] != committed[i]), n)
    return max(0, min(same, len(committed) - 1))


@dataclass
class Sequence:
    seq_id: int  # engine cache key
    req: Request
    seed: int  # request seed (drawn at admission if the request gave none)
    threshold: float  # LLM iff router score > threshold
    max_context: int  # prompt + completion cap, the smaller of both engines'
    detok: Detokenizer
    eos_ids: frozenset[int]
    tokens: list[int] = field(default_factory=list)  # prompt + committed completion
    slm_seen: int = 0
    llm_seen: int = 0
    finish_reason: str | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    # engines.grammar.SeqGrammar when the request has a grammar: it has consumed exactly
    # the committed completion tokens (every engine step leaves it so)
    grammar: Any = None
    # adaptive run-ahead (SchedulerConfig.adaptive_max_batch): the most drafts next step;
    # None = the scheduler's window
    draft_cap: int | None = None

    @classmethod
    def start(
        cls,
        seq_id: int,
        req: Request,
        seed: int,
        threshold: float,
        max_context: int,
        tokenizer: Any,
        eos_ids: frozenset[int],
        grammar: Any = None,
    ) -> Sequence:
        det = Detokenizer(tokenizer, req.sampling.stop)
        return cls(seq_id, req, seed, threshold, max_context, det, eos_ids,
                   list(req.prompt_ids), grammar=grammar)  # fmt: skip

    @property
    def request_id(self) -> str:
        return self.req.request_id

    @property
    def n_completion(self) -> int:
        return len(self.tokens) - len(self.req.prompt_ids)

    def draft_len(self, window: int) -> int:
        """Tokens the SLM may draft this step: window, max_tokens and context allowing."""
        left = self.req.sampling.max_tokens - self.n_completion
        return max(1, min(window, left, self.max_context - len(self.tokens)))

    def adapt_window(self, cut: bool, window: int) -> None:
        """Slow start: after a cut draft 1 (LLM positions come in clusters), after a step
        whose drafts were all kept draft twice as many, at most ``window``."""
        self.draft_cap = 1 if cut else min(window, 2 * (self.draft_cap or window))

    def llm_allowed(self, slm_ahead: int = 0, llm_ahead: int = 0) -> bool:
        """May the LLM write the position that follows the committed tokens plus
        ``slm_ahead`` SLM and ``llm_ahead`` LLM tokens about to be committed?

        ``max_llm_tokens`` caps the LLM's tokens; ``max_llm_share`` s admits an LLM
        token only if (llm tokens + 1) / (completion tokens + 1) <= s, so the LLM
        share of every prefix of the answer stays <= s. Both depend only on the
        tokens before the position, never on the run-ahead window.
        """
        r = self.req.routing
        llm = self.stats.llm_tokens + llm_ahead
        if r.max_llm_tokens is not None and llm >= r.max_llm_tokens:
            return False
        n = self.n_completion + slm_ahead + llm_ahead
        return r.max_llm_share is None or (llm + 1) / (n + 1) <= r.max_llm_share

    def llm_run(self, limit: int) -> int:
        """How many of the next ``limit`` positions the LLM may write in a row."""
        return next((i for i in range(limit) if not self.llm_allowed(llm_ahead=i)), limit)

    def commit(
        self,
        token: int,
        source: str,
        score: float | None,
        lp: TokenLogprob | None = None,
        fallback: bool = False,
        forced: bool = False,
    ) -> TokenEvent:
        """Append one committed token; finish on eos / stop string / length.
        ``lp``: its log-probs from the model that wrote it, if the request asked.
        ``fallback``: an SLM token at a position routed to an LLM that failed.
        ``forced``: the grammar allowed this token alone.
        A token the grammar refuses raises (the caller fails the sequence)."""
        if self.grammar is not None and token not in self.eos_ids:
            self.grammar.advance(token)
        self.stats.forced_tokens += forced
        self.tokens.append(token)
        if source == "llm":
            self.stats.llm_tokens += 1
        else:
            self.stats.slm_tokens += 1
            self.stats.llm_fallback_tokens += fallback
        text, stopped = self.detok.add(token)
        if stopped or token in self.eos_ids:
            self.finish_reason = FINISH_STOP
        elif (
            self.n_completion >= self.req.sampling.max_tokens
            or len(self.tokens) >= self.max_context
        ):
            self.finish_reason = FINISH_LENGTH
        if self.finish_reason is not None and not stopped:
            text += self.detok.flush()  # nothing held back can become a stop string now
        return TokenEvent(
            self.request_id,
            token,
            text,
            source,
            score,
            self.finish_reason,
            self.stats if self.finish_reason else None,
            None if lp is None else lp.logprob,
            None if lp is None else list(lp.top),
            fallback,
        )

    def fail(self, error: BaseException) -> TokenEvent:
        """End the request because its own work raised; the final event says why.
        Its tokens so far stay committed (and billed); the caller frees its caches."""
        self.finish_reason = FINISH_ERROR
        why = f"{type(error).__name__}: {error}"
        return TokenEvent(
            self.request_id, None, "", None, None, FINISH_ERROR, self.stats, error=why
        )
