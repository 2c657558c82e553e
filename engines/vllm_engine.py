"""vLLM engine: the Engine protocol over one in-process vLLM instance, token ids only.

Two of them, SLM and LLM, share one process and one device (``build_vllm_pair``).
One ``step`` is one ``LLM.generate`` call over every SeqWork of the scheduler step:

    SeqWork --TokensPrompt(cached tokens + new_tokens)--> vLLM (prefix caching on)
      greedy : one request, max_tokens = n_out   (the whole run-ahead window)
      sampled: one request per draft position, max_tokens = 1, seed = f(seed, position),
               all sequences' position j in one call (j = 0 .. n_out - 1)
      logprobs = max(8 if the router reads logprobs:top8, the request's top_logprobs)
      sample_offsets (verify): one more request per offset in the first call, max_tokens 1
               (engines.vllm_probes)
    -> StepOutput(tokens, RouterFeatures(token, logprobs:top8) rows, TokenLogprobs, sampled)

vLLM owns the KV cache. The protocol's per-sequence cache lives here as the token
list that cache would hold (``_seqs``); every step sends vLLM that list plus the new
tokens, and its prefix cache (keyed by hashes of full token blocks) finds the blocks
earlier steps computed, so vLLM prefills only the new tokens and the partial last
block: that is the catch-up. Cropping is free: a dropped draft's block never hashes
like the committed prefix again, and unreferenced blocks are evicted LRU. No vLLM
request outlives a step, so ``free`` (finish, abort) leaves nothing behind in vLLM.

Router features: the drafted token and its top-8 log-probs (raw, before temperature,
like the HF engine's). No hidden states: vLLM's one documented way out
(``speculative_config={"method": "extract_hidden_states"}`` plus a KV connector)
writes pre-final-norm states of a request to files, one draft token at a time; a
router card that needs ``hidden:final`` is refused at start-up (router_models.card).
Sampled tokens come from vLLM's own seeded generator, so they differ from the HF
engine's (greedy tokens match it); per position seeds keep run-ahead exact.
"""

from __future__ import annotations

from typing import Any

import torch

from engines.bookkeeping import TokenCaches, check_work
from engines.seeds import MASK64, mix64
from engines.types import EngineInfo, SeqWork, StepOutput, TokenLogprob
from engines.vllm_load import VLLMEngineConfig, load
from engines.vllm_probes import (
    position_logprobs,
    probe_requests,
    probe_rows,
    verify_requests,
    verify_rows,
)
from router_models.base import FEATURE_TOKEN, FEATURE_TOPK, TOPK, RouterFeatures

FEATURES = (FEATURE_TOKEN, FEATURE_TOPK)  # what this engine can fill


def _position_seed(seed: int, position: int) -> int:
    """vLLM seed of the one-token request that samples ``position``: a pure function
    of (request seed, position), so window and batch never change a sampled token."""
    return mix64(mix64(seed & MASK64) ^ position) >> 1  # [0, 2**63)


def _eos_ids(path: str) -> tuple[int, ...]:
    """EOS ids as the HF engine reads them: generation config first, then the model's."""
    from transformers import AutoConfig, GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json
        eos = None
    if eos is None:
        eos = AutoConfig.from_pretrained(path).get_text_config(decoder=True).eos_token_id
    return () if eos is None else tuple([eos] if isinstance(eos, int) else eos)


class VLLMEngine(TokenCaches):
    """Engine protocol (``engines.types.Engine``) over one ``vllm.LLM``."""

    def __init__(self, cfg: VLLMEngineConfig) -> None:
        self.cfg = cfg
        self.llm = load(cfg)
        mc = self.llm.llm_engine.model_config
        self.block_size = self.llm.llm_engine.vllm_config.cache_config.block_size  # tokens
        self.info = EngineInfo(
            name=str(cfg.path),
            hidden_size=mc.get_hidden_size(),
            vocab_size=mc.get_vocab_size(),
            max_context=mc.max_model_len,
            eos_token_ids=_eos_ids(cfg.path),
            features=FEATURES,
            probes=True,  # prompt scoring rows (engines.vllm_probes), no hidden state
            # sample_offsets are always served (engines.vllm_probes); advertised per cfg.verify
            verifies=cfg.device == "cuda" if cfg.verify is None else cfg.verify,
        )
        super().__init__()  # _seqs: seq id -> tokens its vLLM prefix cache was fed
        self.prefill_tokens = 0  # prompt tokens vLLM computed (not found in its prefix cache)
        self.cached_tokens = 0  # prompt tokens served from its prefix cache

    def num_requests(self) -> int:
        """Requests alive inside vLLM (0 between steps)."""
        return self.llm.llm_engine.get_num_unfinished_requests()

    # -- compute -------------------------------------------------------------
    def step(self, work: list[SeqWork], features: tuple[str, ...] | None = None) -> StepOutput:
        from vllm.inputs import TokensPrompt

        for w in work:
            self._check(w)
        topk = features is not None and FEATURE_TOPK in features
        tokens: list[list[int]] = [[] for _ in work]
        tops: list[list[list[tuple[int, float]]]] = [[] for _ in work]  # per token, best first
        chosen: list[list[float]] = [[] for _ in work]  # log-prob of each produced token
        ctx = [self._seqs.get(w.seq_id, []) + w.new_tokens for w in work]
        # log-probs per produced token: top 8 for the router, the request's top_logprobs
        # (0: the token's own log-prob only); None: vLLM computes none
        ks = [
            None if not topk and w.sampling.logprobs is None
            else max(TOPK if topk else 0, w.sampling.logprobs or 0)
            for w in work
        ]  # fmt: skip
        active = list(range(len(work)))
        # the verify rows ride in the first generate call (one engine pass)
        verify = verify_requests(work, ctx, lambda w, p: self._params(w, p, w.sampling.logprobs, 1))
        verify_outs: list[Any] = []
        while active:  # one pass for greedy work; sampled work draws one position per pass
            prompts = [TokensPrompt(prompt_token_ids=ctx[i] + tokens[i]) for i in active]
            params = [self._params(work[i], len(ctx[i]) + len(tokens[i]), ks[i]) for i in active]
            outs = self.llm.generate(prompts + [p for p, _ in verify],
                                     params + [sp for _, sp in verify], use_tqdm=False)  # fmt: skip
            if verify:
                verify_outs, outs, verify = outs[len(active) :], outs[: len(active)], []
                for o in verify_outs:
                    self._count(o)
            nxt = []
            for i, out in zip(active, outs, strict=True):
                self._count(out)
                comp = out.outputs[0]
                for j, t in enumerate(comp.token_ids):
                    tokens[i].append(t)
                    if comp.logprobs is not None:
                        c, top = position_logprobs(comp.logprobs, j, t, ks[i] or 0)
                        chosen[i].append(c)
                        tops[i].append(top)
                more = (
                    len(tokens[i]) < work[i].n_out and tokens[i][-1] not in self.info.eos_token_ids
                )
                if more and work[i].sampling.temperature > 0.0:
                    nxt.append(i)  # a sampled window goes on; a greedy one came whole
            active = nxt
        out = StepOutput(tokens=tokens)
        if verify_outs:
            out.sampled, out.sampled_logprobs = verify_rows(work, verify_outs)
        probes = probe_requests(work, ctx)
        if probes:  # after the work's own requests: their prefix-cache hits come first
            asked = [i for i, _, _ in probes]
            got = self.llm.generate([p for _, p, _ in probes], [s for _, _, s in probes],
                                    use_tqdm=False)  # fmt: skip
            out.probes, out.probe_logprobs = probe_rows(work, asked, got)
        for w, c, toks in zip(work, ctx, tokens, strict=True):
            self._seqs[w.seq_id] = c + toks[:-1]  # the last token was produced, not fed
        if any(w.sampling.logprobs is not None for w in work):
            out.logprobs = [
                [TokenLogprob(lp, tuple(top[: w.sampling.logprobs])) for lp, top in
                 zip(chosen[i], tops[i], strict=True)] if w.sampling.logprobs is not None else []
                for i, w in enumerate(work)
            ]  # fmt: skip
        if features is not None:
            out.features = self._features(work, tokens, tops if topk else None)
        return out

    def _count(self, out: Any) -> None:
        """Prefix-cache statistics of one finished request."""
        self.cached_tokens += out.num_cached_tokens or 0
        self.prefill_tokens += len(out.prompt_token_ids) - (out.num_cached_tokens or 0)

    def _params(self, w: SeqWork, position: int, k: int | None, n_out: int | None = None) -> Any:
        """vLLM sampling params of the request that samples from ``position`` on
        (``n_out`` tokens if greedy, default the work's; one if sampled)."""
        from vllm import SamplingParams as VSamplingParams

        sp = w.sampling
        greedy = sp.temperature == 0.0
        return VSamplingParams(
            max_tokens=(n_out or w.n_out) if greedy else 1,
            temperature=sp.temperature,
            top_p=sp.top_p,
            top_k=sp.top_k,  # 0 = off in both
            seed=None if greedy else _position_seed(w.seed, position),
            logprobs=k,
            ignore_eos=True,  # eos ends a draft here, as in the HF engine:
            stop_token_ids=list(self.info.eos_token_ids),  # kept in the output
            detokenize=False,
            flat_logprobs=True,  # a few flat lists instead of one dict per token
        )

    def _features(
        self,
        work: list[SeqWork],
        tokens: list[list[int]],
        tops: list[list[list[tuple[int, float]]]] | None,
    ) -> RouterFeatures:
        """One row per produced token, work-major (engines.features' order)."""
        rows = [(i, j) for i, toks in enumerate(tokens) for j in range(len(toks))]
        topk = None
        if tops is not None:
            topk = torch.tensor(
                [[lp for _, lp in tops[i][j][:TOPK]] for i, j in rows], dtype=torch.float32
            ).reshape(len(rows), TOPK)  # [R, TOPK], descending
        return RouterFeatures(
            token_ids=torch.tensor([tokens[i][j] for i, j in rows], dtype=torch.int64),  # [R]
            topk_logprobs=topk,
            seeds=[work[i].seed for i, _ in rows],
            positions=[work[i].start + len(work[i].new_tokens) + j for i, j in rows],
        )

    def _check(self, w: SeqWork) -> None:
        check_work(w, self.cache_len(w.seq_id), self.info)
        if w.probe_offsets and len(w.probe_targets) != len(w.probe_offsets):
            raise ValueError(  # training-time collection needs hidden states
                "the vllm engine's probe rows score given targets only: collect with --engine hf"
            )
        if any(not 0 <= o < len(w.new_tokens) for o in w.sample_offsets):
            raise ValueError(f"seq {w.seq_id}: sample_offsets must lie in [0, {len(w.new_tokens)})")


def build_vllm_pair(slm: VLLMEngineConfig, llm: VLLMEngineConfig) -> tuple[VLLMEngine, VLLMEngine]:
    """SLM and LLM engines co-located in this process, on one device."""
    if slm.device != llm.device:
        raise ValueError(f"SLM on {slm.device} but LLM on {llm.device}: one device for both")
    share = slm.gpu_memory_fraction + llm.gpu_memory_fraction
    if slm.device == "cuda" and share > 0.95:
        raise ValueError(
            f"GPU memory split {slm.gpu_memory_fraction} (SLM) + {llm.gpu_memory_fraction} "
            f"(LLM) = {share:.2f}: must be <= 0.95 on one device"
        )
    return VLLMEngine(slm), VLLMEngine(llm)
