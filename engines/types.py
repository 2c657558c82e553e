"""Plain messages between the scheduler and the engines (no torch here).

The scheduler sends an engine a list of ``SeqWork`` (one per sequence: the
tokens to append to its cache and how many tokens to produce after them) and
gets a ``StepOutput`` back: token ids per sequence, plus an opaque router
features object it hands to the router untouched, plus (only for sequences
whose ``SamplingParams.logprobs`` asks) each token's log-prob and top-k
alternatives as plain floats. Tensors never leave the engine except inside
that opaque object.

An engine whose ``EngineInfo.fallible`` is set (the remote LLM: tokens sampled by a
server, no logits here) may leave some work undone: ``StepOutput.failed`` names why
per SeqWork, that work gets no tokens and leaves the engine's cache as it was. The
scheduler then writes those positions with the SLM (fail open).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engines.stats import RequestStats

FINISH_STOP = "stop"  # eos or a stop string
FINISH_LENGTH = "length"  # max_tokens or the context is full
FINISH_ABORT = "abort"
# The request's own work failed in a step (an exception attributable to it alone, see
# engines.scheduler); TokenEvent.error says why. Never sent to clients as a reason.
FINISH_ERROR = "error"
# Still waiting for a batch slot at its Request.deadline: ended unstarted (nothing ran).
FINISH_TIMEOUT = "queue_timeout"
MAX_LOGPROBS = 20  # top alternatives per token, at most (OpenAI's top_logprobs limit)
# Temperatures below this sample as greedy (vLLM's _SAMPLING_EPS): dividing logits by a
# tiny temperature overflows to inf and the softmax to NaN.
GREEDY_BELOW = 1e-5


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is and can provide; checked against routers at start-up."""

    name: str  # e.g. the model folder
    hidden_size: int
    vocab_size: int  # rows of the LM head (may exceed the tokenizer's length)
    max_context: int  # longest sequence (prompt + completion) in tokens
    eos_token_ids: tuple[int, ...]
    features: tuple[str, ...]  # router_models.base FEATURE_* names it can fill
    # May fail per sequence (StepOutput.failed): a server behind a network. Only the LLM
    # may be fallible; its failed positions get the SLM's token.
    fallible: bool = False
    # Returns teacher-forced probe rows (SeqWork.probe_offsets): prompt log-probs need it.
    probes: bool = False
    # Samples at SeqWork.sample_offsets: one pass settles several routed positions.
    verifies: bool = False
    # Applies SeqWork.grammar masks before sampling. An LLM that cannot (a remote server)
    # has each token checked against the grammar instead; a refused one fails open.
    masks: bool = False


def check_features(router: str, needed: Iterable[str], engine: str, offered: Iterable[str]) -> None:
    """The one check that an engine fills what a router reads; ValueError naming both."""
    available = list(offered)
    missing = [f for f in needed if f not in available]
    if missing:
        raise ValueError(
            f"router {router!r} needs features {missing} that the SLM engine ({engine}) "
            f"cannot provide (it gives {available}): use a router made for this engine"
        )


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding parameters, validated when built.

    Every position p of a request draws from its own random stream keyed by
    (seed, p), so the tokens never depend on batching or the run-ahead window.
    """

    max_tokens: int = 256  # completion tokens; the scheduler also enforces its cap (0: none)
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # nucleus mass kept, in (0, 1]
    top_k: int = 0  # 0 = off
    stop: tuple[str, ...] = ()  # never emitted; the answer ends before them
    seed: int | None = None  # None: the scheduler draws one at admission
    # None: no log-probs (the engines compute nothing). k: each token's log-prob plus the
    # k most likely alternatives, from log_softmax of the producing model's raw logits
    # (before temperature / top-k / top-p, as vLLM's default raw_logprobs).
    logprobs: int | None = None
    # None: no prompt log-probs. k: each prompt token's log-prob (after the first) and its
    # k most likely alternatives, teacher-forced (engines.prompt_scores says which model).
    prompt_logprobs: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.max_tokens) or self.max_tokens < 0:
            raise ValueError(f"max_tokens={self.max_tokens!r}: must be an integer >= 0")
        if not _is_real(self.temperature) or not 0.0 <= self.temperature < math.inf:
            raise ValueError(f"temperature={self.temperature!r}: must be >= 0 (0 = greedy)")
        if self.temperature < GREEDY_BELOW:  # normalised, so every engine agrees
            object.__setattr__(self, "temperature", 0.0)
        if not _is_real(self.top_p) or not 0.0 < self.top_p <= 1.0:  # also rejects NaN
            raise ValueError(f"top_p={self.top_p!r}: must be in (0, 1]")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k={self.top_k!r}: must be an integer >= 0 (0 = off)")
        if isinstance(self.stop, str):  # a bare string would be split into characters
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"stop={self.stop!r}: every stop string must be non-empty")
        if self.seed is not None and (not _is_int(self.seed) or not -(2**63) <= self.seed < 2**63):
            raise ValueError(f"seed={self.seed!r}: must fit in int64")
        for name in ("logprobs", "prompt_logprobs"):
            lp = getattr(self, name)
            if lp is not None and (not _is_int(lp) or not 0 <= lp <= MAX_LOGPROBS):
                msg = f"{name}={lp!r}: must be None or an integer in [0, {MAX_LOGPROBS}]"
                raise ValueError(msg)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True)
class RoutingParams:
    """Per-request routing controls (see ``engines.sequence.Sequence.llm_allowed``)."""

    threshold: float | None = None  # LLM iff score > threshold; None = router default
    max_llm_tokens: int | None = None  # after this many LLM tokens, the SLM writes the rest
    # Exact ceiling on the LLM token share: the LLM may write a position only if
    # (llm tokens + 1) / (completion tokens + 1) <= max_llm_share; else the SLM's token stays.
    max_llm_share: float | None = None
    # Speculative decoding: every position goes to the LLM (threshold -inf, the LLM's own
    # tokens) but the SLM still drafts the window and one LLM pass verifies every draft,
    # so each pass commits the drafts up to the first it disagrees with, plus its own.
    speculative: bool = False

    def __post_init__(self) -> None:
        if self.threshold is not None and self.threshold != self.threshold:
            raise ValueError("threshold=nan: must be a number (LLM iff score > threshold)")
        if self.speculative and self.threshold not in (None, float("-inf")):
            raise ValueError("speculative: every position goes to the LLM, so no threshold")
        if self.max_llm_tokens is not None and self.max_llm_tokens < 0:
            raise ValueError(f"max_llm_tokens={self.max_llm_tokens!r}: must be >= 0 or None")
        share = self.max_llm_share
        if share is not None and not 0.0 <= share <= 1.0:  # also rejects NaN
            raise ValueError(f"max_llm_share={share!r}: must be in [0, 1] or None")


@dataclass
class Request:
    request_id: str
    prompt_ids: list[int]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    routing: RoutingParams = field(default_factory=RoutingParams)
    # time.monotonic() by which it must hold a batch slot, else it ends FINISH_TIMEOUT
    # (a budget hold must not outlive its TTL in the queue); None: waits as long as needed
    deadline: float | None = None
    # llguidance grammar (engines.grammar) every completion token must follow; None: free
    grammar: str | None = None


@dataclass
class SeqWork:
    """Extend one sequence's cache, then produce ``n_out`` tokens.

    The first output token is sampled from the logits after the last of
    ``new_tokens``; each further one (run-ahead drafting) after feeding the
    previous output back in. Drafting stops early after an eos token.
    """

    seq_id: int
    start: int  # cache length the engine must hold for this sequence before the step
    new_tokens: list[int]  # appended at absolute positions start, start+1, ...; >= 1 token
    sampling: SamplingParams
    seed: int  # the request's seed; position p draws from stream (seed, p)
    n_out: int = 1
    # Offsets into new_tokens whose (logits, hidden) are also returned as probe rows
    # (teacher forcing); the probe row of offset o predicts position start + o + 1.
    probe_offsets: tuple[int, ...] = ()
    # With probe_offsets: the token at each probe's predicted position, and k. The engine
    # then returns StepOutput.probe_logprobs: each target's log-prob and k alternatives.
    probe_targets: tuple[int, ...] = ()
    probe_logprobs: int | None = None
    # Offsets into new_tokens after which a token is also sampled, as at the end: offset o
    # samples position start + o + 1 from stream (seed, that position); never with a
    # grammar (its state follows committed tokens only). Returned in StepOutput.sampled.
    sample_offsets: tuple[int, ...] = ()
    # The sequence's grammar state after the committed tokens (engines.grammar.SeqGrammar):
    # a masking engine samples every token under it and leaves it as it found it.
    grammar: Any = None


@dataclass(frozen=True)
class TokenLogprob:
    """A produced token's log-prob and the most likely alternatives (natural log)."""

    logprob: float  # of the produced token, under the model that produced it
    top: tuple[tuple[int, float], ...]  # the k most likely (token id, log-prob), best first


@dataclass
class StepOutput:
    tokens: list[list[int]]  # per SeqWork, the 1..n_out tokens it produced
    features: Any = None  # RouterFeatures, one row per produced token (work-major), if asked
    probes: Any = None  # RouterFeatures for the probe_offsets rows, if any were asked
    # None when no SeqWork asked (sampling.logprobs None); else per SeqWork one entry per
    # produced token for those that asked, [] for those that did not.
    logprobs: list[list[TokenLogprob]] | None = None
    # Fallible engines only: per SeqWork None (tokens made) or why none came ("timeout",
    # "unreachable", "circuit_open", ...); failed work has tokens [] and its cache is
    # unchanged (still ``start`` tokens long). None: everything succeeded.
    failed: list[str | None] | None = None
    # None when no SeqWork had a grammar; else per SeqWork one flag per produced token:
    # the grammar allowed that token alone (it costs the LLM nothing: never routed there).
    forced: list[list[bool]] | None = None
    # None when no SeqWork asked probe_logprobs; else per SeqWork one entry per probe.
    probe_logprobs: list[list[TokenLogprob]] | None = None
    # None when no SeqWork had sample_offsets; else per SeqWork one token per offset, and
    # (sampled_logprobs) their log-probs for the work whose sampling asked, [] for others.
    sampled: list[list[int]] | None = None
    sampled_logprobs: list[list[TokenLogprob]] | None = None


class Engine(Protocol):
    """A model with per-sequence KV caches that persist across steps.

    Invariant: a sequence's cache holds exactly the tokens given to it in
    ``new_tokens`` (minus what ``crop`` removed); sampled tokens enter a cache
    only when they are sent back as ``new_tokens``, except the run-ahead
    drafts of one ``step``, which the caller crops away if not committed.
    Work a fallible engine reports in ``StepOutput.failed`` leaves its cache as it was.
    """

    info: EngineInfo

    def step(self, work: list[SeqWork], features: tuple[str, ...] | None = None) -> StepOutput:
        """One batched forward (plus n_out - 1 single-token forwards) over ``work``.

        ``features`` None: no router rows. A tuple: ``StepOutput.features`` is a
        RouterFeatures with token ids, seeds and positions of every produced
        token, plus the named FEATURE_* tensors (logits, hidden). Work whose
        ``sampling.logprobs`` is set gets ``StepOutput.logprobs`` rows: log_softmax
        of the raw logits each token was sampled from (before temperature/top-p).
        """
        ...

    def cache_len(self, seq_id: int) -> int:
        """Tokens in the sequence's cache; 0 if it has none."""
        ...

    def crop(self, seq_id: int, length: int) -> None:
        """Keep the first ``length`` cached tokens of a sequence."""
        ...

    def free(self, seq_id: int) -> None:
        """Drop a sequence's cache (no error if it has none)."""
        ...

    def num_caches(self) -> int:
        """Number of live sequence caches."""
        ...

    def close(self) -> None:
        """Release what the engine holds besides its caches (a remote engine's
        connection pool); called once at shutdown, after the last step."""
        ...


@dataclass
class TokenEvent:
    """One committed token of a request's stream (or its final event).

    ``token_id`` is None only for the final event of an abort, an error or a request
    without completion tokens, and for the prompt event (``prompt_logprobs``). ``text`` is the text
    this token releases: it may be empty (held back while it could be the start
    of a stop string, or a special token) and never contains a stop string.
    """

    request_id: str
    token_id: int | None
    text: str
    source: str | None  # "slm" or "llm"
    score: float | None  # router score at this position
    finish_reason: str | None = None  # set on the request's last event
    stats: RequestStats | None = None  # set on the request's last event
    # Only when the request asked (SamplingParams.logprobs): the token's log-prob under
    # the model that wrote it (source) and its top-k alternatives (token id, log-prob).
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    fallback: bool = False  # an SLM token at a position routed to an LLM that failed
    error: str | None = None  # with FINISH_ERROR: why this request's work failed
    # Only on a request's prompt event (SamplingParams.prompt_logprobs; token_id None, the
    # first event): per prompt token its log-prob and alternatives (None for the first
    # token) and the model that scored it ("slm" / "llm"; None for the first).
    prompt_logprobs: list[TokenLogprob | None] | None = None
    prompt_sources: list[str | None] | None = None


@dataclass
class RequestOutput:
    """A finished request, as ``generate_batch`` returns it."""

    request_id: str
    prompt_ids: list[int]
    token_ids: list[int]  # committed completion tokens (eos included if produced)
    text: str  # the streamed text: no stop string, no special tokens
    sources: list[str]  # "slm" / "llm" per token
    scores: list[float]  # router score per token
    finish_reason: str
    stats: RequestStats
    logprobs: list[float] = field(default_factory=list)  # per token, if the request asked
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)  # likewise
    prompt_logprobs: list[TokenLogprob | None] | None = None  # if asked (TokenEvent's)
    prompt_sources: list[str | None] | None = None
