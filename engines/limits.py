"""What a pair can decode, checked once at start-up and per request before any work.

    PairLimits.of(slm, llm, router, tokenizer, max_tokens_cap)   start-up: ValueError for
        a pair that cannot work together (remote SLM, missing router features,
        tokenizer larger than the models' vocabulary); the grammar support (none and
        why: an SLM engine that cannot mask, a tokenizer llguidance cannot read)
    PairLimits.validate(request)   ValueError naming the bad field and its allowed range

Plain Python, no torch (llguidance only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engines.grammar import Grammars
from engines.types import Engine, Request, check_features

if TYPE_CHECKING:
    from router_models.base import Router


@dataclass(frozen=True)
class PairLimits:
    vocab: int  # token ids a request may hold: [0, vocab)
    max_context: int  # prompt + completion, the smaller of both engines'
    max_tokens_cap: int
    eos_ids: frozenset[int]  # both models' and the tokenizer's end-of-sequence ids
    grammars: Grammars | None  # None: structured output is not available (see why_not)
    why_not: str
    probes: tuple[bool, bool] = (True, True)  # (SLM, LLM) can score prompts (probe rows)

    @classmethod
    def of(
        cls, slm: Engine, llm: Engine, router: Router, tokenizer: Any, max_tokens_cap: int
    ) -> PairLimits:
        if slm.info.fallible:
            raise ValueError(
                f"SLM engine {slm.info.name} may fail per token (a remote engine): only the "
                "LLM may be remote, since the SLM's tokens are the fallback"
            )
        check_features(router.name, router.features, slm.info.name, slm.info.features)
        vocab = min(slm.info.vocab_size, llm.info.vocab_size)
        if len(tokenizer) > vocab:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the models' vocab_size is "
                f"{slm.info.vocab_size} (SLM) / {llm.info.vocab_size} (LLM): not a matching pair"
            )
        eos = {*slm.info.eos_token_ids, *llm.info.eos_token_ids}
        if getattr(tokenizer, "eos_token_id", None) is not None:
            eos.add(tokenizer.eos_token_id)
        grammars, why_not = None, ""
        if not slm.info.masks:
            why_not = f"the SLM engine ({slm.info.name}) cannot apply grammar masks: use hf"
        else:
            try:
                grammars = Grammars(tokenizer, vocab, frozenset(eos))
            except Exception as e:  # e.g. a slow (Python) tokenizer llguidance cannot read
                why_not = f"llguidance cannot read this tokenizer: {type(e).__name__}: {e}"
        max_context = min(slm.info.max_context, llm.info.max_context)
        probes = (slm.info.probes, llm.info.probes)
        return cls(vocab, max_context, max_tokens_cap, frozenset(eos), grammars, why_not, probes)

    def validate(self, req: Request) -> None:
        """Raise ValueError naming the bad field and its allowed range."""
        n = len(req.prompt_ids)
        if n == 0:
            raise ValueError("prompt: must have at least 1 token")
        if n >= self.max_context:
            ctx = self.max_context
            raise ValueError(f"prompt: {n} tokens; allowed 1..{ctx - 1} (context {ctx})")
        if any(not 0 <= t < self.vocab for t in req.prompt_ids):
            raise ValueError(f"prompt: token ids must lie in [0, {self.vocab})")
        cap = self.max_tokens_cap
        if req.sampling.max_tokens > cap:
            raise ValueError(f"max_tokens={req.sampling.max_tokens}: allowed range [0, {cap}]")
        if req.sampling.prompt_logprobs is not None:
            r = req.routing  # the models that may score it: engines.prompt_scores.scorer
            need = (r.max_llm_tokens == 0 or r.threshold != float("-inf"), r.max_llm_tokens != 0)
            if any(n and not p for n, p in zip(need, self.probes, strict=True)):
                raise ValueError(
                    "prompt_logprobs: this server's engines cannot score prompts (a remote "
                    "LLM cannot: score with model slm, or serve the LLM with hf or vllm)"
                )
        if req.grammar is not None:
            if self.grammars is None:
                raise ValueError(f"grammar: structured output is not available ({self.why_not})")
            why = self.grammars.check(req.grammar)
            if why:
                raise ValueError(f"grammar: {why}")
