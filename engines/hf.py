"""Hugging Face transformers engine: any local causal-LM folder on CPU or CUDA.

One ``step`` runs one padded batched forward over all sequences (each extended
by its own number of new tokens, see ``engines.kvcache`` for the layout),
samples one token per sequence from the logits at its last new position, and
repeats with single-token forwards for run-ahead drafts. Logits are computed
only at the rows that need them: ``lm_head(final-norm hidden)``, which a probe
at load time checks against the model's own forward. Sequences that ask for
log-probs get them from the same logits the token was sampled from.
"""

from __future__ import annotations

import torch

from engines import chunking, compiled, kvcache, ragged
from engines import features as features_mod
from engines.bookkeeping import check_work
from engines.hf_load import DTYPES, HFEngineConfig, ModelLoadError, load_model, load_tokenizer
from engines.masking import mask_logits
from engines.sampling import sample, token_logprobs
from engines.types import EngineInfo, SamplingParams, SeqWork, StepOutput, TokenLogprob
from router_models.base import (
    FEATURE_HIDDEN,
    FEATURE_LOGITS,
    FEATURE_TOKEN,
    FEATURE_TOPK,
    topk_logprobs,
)

# Loading lives in engines.hf_load; its names stay importable from here.
__all__ = ["DTYPES", "HFEngine", "HFEngineConfig", "ModelLoadError", "load_model", "load_tokenizer"]


class HFEngine:
    """Engine protocol (``engines.types.Engine``) over a transformers model."""

    def __init__(self, cfg: HFEngineConfig) -> None:
        self.cfg = cfg
        self.model = load_model(cfg)
        self.dtype = DTYPES[cfg.dtype]
        self.body = self.model.base_model  # decoder stack ending in the final norm
        self.head = self.model.get_output_embeddings()
        c = self.model.config.get_text_config(decoder=True)
        self.kv_shape = kvcache.kv_shape(c)
        eos = self.model.generation_config.eos_token_id
        eos = c.eos_token_id if eos is None else eos
        eos_ids = () if eos is None else tuple([eos] if isinstance(eos, int) else eos)
        self.info = EngineInfo(
            name=str(cfg.path),
            hidden_size=c.hidden_size,
            vocab_size=self.head.weight.shape[0],
            max_context=c.max_position_embeddings,
            eos_token_ids=eos_ids,
            features=(FEATURE_TOKEN, FEATURE_LOGITS, FEATURE_HIDDEN, FEATURE_TOPK),
            masks=True,
            probes=True,
            verifies=True,
        )
        self.kv = kvcache.KVPool(self.kv_shape, self.dtype, cfg.device)
        self.ragged = cfg.ragged and ragged.enable(self.model)  # the probe may turn it off
        self.compiled: compiled.CompiledBody | None = None
        self._probe()
        if cfg.compile:
            compiled.attach(self)

    # -- cache bookkeeping ---------------------------------------------------
    def cache_len(self, seq_id: int) -> int:
        return self.kv.length(seq_id)

    def cached_tokens(self, seq_id: int) -> list[int]:
        return list(self.kv.tokens.get(seq_id, ()))

    def crop(self, seq_id: int, length: int) -> None:
        if seq_id in self.kv:
            self.kv.crop(seq_id, length)
        elif length:
            raise ValueError(f"crop seq {seq_id} to {length}: it has no cache")

    def free(self, seq_id: int) -> None:
        self.kv.free(seq_id)

    def num_caches(self) -> int:
        return len(self.kv)

    def kv_usage(self) -> tuple[int, int, int]:
        """(live tokens, allocated positions, allocated bytes); any thread may ask."""
        return self.kv.usage()

    def reserve_kv(self, slots: int, positions: int) -> None:
        """Allocate (and touch) cache room now, not in the first forwards that need it."""
        self.kv.reserve(slots, min(positions, self.info.max_context))

    def release_kv(self) -> None:
        """Give the cache memory back if no sequence is live (else keep it)."""
        self.kv.release()

    close = release_kv  # at shutdown, after the last step; the model goes with the process

    # -- compute -------------------------------------------------------------
    @torch.inference_mode()
    def step(self, work: list[SeqWork], features: tuple[str, ...] | None = None) -> StepOutput:
        for w in work:
            self._check(w)
        want = () if features is None else features
        tokens: list[list[int]] = [[] for _ in work]
        rows: list[tuple[int, int]] = []  # (work index, draft index) of each produced token
        ids_f: list[torch.Tensor] = []  # per forward: [B_j] sampled ids
        logits_f: list[torch.Tensor] = []  # per forward: [B_j, vocab], if asked
        hidden_f: list[torch.Tensor] = []  # per forward: [B_j, hidden], if asked
        topk_f: list[torch.Tensor] = []  # per forward: [B_j, TOPK], if asked
        ask_lp = any(w.sampling.logprobs is not None for w in work)
        lps: list[list[TokenLogprob]] = [[] for _ in work]  # per work, per produced token
        probes = probe_lps = None
        active = list(range(len(work)))
        feed = [w.new_tokens for w in work]
        sampled = sampled_lps = None
        probe_at = [[*w.probe_offsets, *w.sample_offsets] for w in work]  # first pass only
        is_probe = torch.tensor(  # over the rows of probe_at: probe (True) or sample row
            [k < len(w.probe_offsets) for w in work
             for k in range(len(w.probe_offsets) + len(w.sample_offsets))],
            dtype=torch.bool, device=self.cfg.device,
        )  # fmt: skip
        n_probe = sum(len(w.probe_offsets) for w in work)
        grammars = [w.grammar for w in work]
        forced: list[list[bool]] | None = None
        if any(g is not None for g in grammars):
            forced = [[] for _ in work]
        drafted = [0] * len(work)  # tokens each grammar consumed in this step (rolled back)
        j = 0
        try:
            while active:
                hidden, probe_h = self._forward([work[i].seq_id for i in active], feed, probe_at)
                logits = self.head(hidden).float()  # [B, vocab]
                if forced is not None:  # before sampling, log-probs and router features
                    only = mask_logits(
                        logits, [grammars[i] for i in active], self.info.eos_token_ids
                    )
                    for i, f in zip(active, only, strict=True):
                        forced[i].append(f)
                pos = [work[i].start + len(work[i].new_tokens) + j for i in active]
                ids = sample(
                    logits, [work[i].sampling for i in active], [work[i].seed for i in active],
                    pos,
                )  # fmt: skip  # [B]
                if probe_h is not None:  # per work: its probe rows, then its sample rows
                    at_logits = self.head(probe_h).float()  # [sum(probe_at), vocab]
                    if n_probe:
                        probe_logits = at_logits[is_probe]  # [sum(probes), vocab]
                        probe_h = probe_h[is_probe].float()  # [sum(probes), hidden]
                        probes = features_mod.probe_rows(work, probe_logits, probe_h)
                        probe_lps = features_mod.probe_logprobs(work, probe_logits)
                    if n_probe < len(is_probe):
                        sampled, sampled_lps = features_mod.sampled_rows(work, at_logits[~is_probe])
                if ask_lp:
                    ks = [work[i].sampling.logprobs for i in active]
                    for i, lp in zip(active, token_logprobs(logits, ids, ks), strict=True):
                        if lp is not None:
                            lps[i].append(lp)
                rows += [(i, j) for i in active]
                ids_f.append(ids)
                if FEATURE_LOGITS in want:
                    logits_f.append(logits)
                if FEATURE_HIDDEN in want:
                    hidden_f.append(hidden.float())
                if FEATURE_TOPK in want:
                    topk_f.append(topk_logprobs(logits))
                nxt = []
                for i, t in zip(active, ids.tolist(), strict=True):
                    tokens[i].append(t)
                    if len(tokens[i]) < work[i].n_out and t not in self.info.eos_token_ids:
                        nxt.append(i)
                        if grammars[i] is not None:  # the next draft's mask follows this one
                            grammars[i].advance(t)
                            drafted[i] += 1
                active, j = nxt, j + 1
                feed = [[tokens[i][-1]] for i in nxt]  # run-ahead: feed the draft back
                probe_at = [[] for _ in nxt]
        finally:  # the grammars leave as they came: committed tokens only
            for g, n in zip(grammars, drafted, strict=True):
                if n:
                    g.rollback(n)
        out = StepOutput(tokens, probes=probes, logprobs=lps if ask_lp else None, forced=forced,
                         probe_logprobs=probe_lps, sampled=sampled,
                         sampled_logprobs=sampled_lps)  # fmt: skip
        if features is not None:
            out.features = features_mod.draft_rows(work, rows, ids_f, logits_f, hidden_f, topk_f)
        return out

    def _forward(
        self, seq_ids: list[int], new: list[list[int]], probe_at: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Extend the caches; return hidden at each last new position [B, hidden]
        and at the probe offsets [sum(len(probe_at)), hidden] (None if none)."""
        last: list[torch.Tensor | None] = [None] * len(seq_ids)
        probe: list[torch.Tensor | None] = [None] * len(seq_ids)
        sizes = [len(x) for x in new]
        cfg = self.cfg
        if self.ragged and not self.kv.viewable(seq_ids, sizes):  # direct: nothing padded
            chunks = chunking.token_chunks(sizes, cfg.max_batch_tokens)
        else:  # chunked as if padded even when ragged: attention pads each chunk to its
            # rows x T (one 64-sequence demo verify forward: 30k padded attention positions
            # for 10k real rows, slower than the chunks' 15k); the layers skip the padding
            chunks = chunking.plan_chunks(sizes, cfg.max_batch_tokens, cfg.pad_free_tokens)
        for chunk in chunks:
            # by slot, new sequences last: they take the next slots, so the chunk stays a run
            chunk = [chunk[i] for i in self.kv.order([seq_ids[c] for c in chunk])]
            h = self._forward_chunk([seq_ids[c] for c in chunk], [new[c] for c in chunk])
            for r, c in enumerate(chunk):
                last[c] = h[r, sizes[c] - 1]  # [hidden]
                probe[c] = h[r, probe_at[c]]  # [n_probe, hidden]
        h_last = torch.stack(last)  # type: ignore[arg-type]  # [B, hidden]
        if not any(probe_at):
            return h_last, None
        return h_last, torch.cat(probe)  # type: ignore[arg-type]

    def _forward_chunk(self, seq_ids: list[int], new: list[list[int]]) -> torch.Tensor:
        """One forward; returns the final-norm hidden states [B, T, hidden] (padded)."""
        batch = self.kv.batch(seq_ids, [len(x) for x in new], ragged=self.ragged)
        h = self._run(new, batch)
        self.kv.commit(seq_ids, new, batch)
        if h.shape[0] == len(seq_ids) and batch.index == list(range(h.shape[0])):
            return h
        return h[torch.tensor(batch.index, device=self.cfg.device)]  # [B, T, hidden]

    def _run(self, new: list[list[int]], batch: kvcache.Batch) -> torch.Tensor:
        """The forward itself; final-norm hidden states [R, T, hidden]. Ragged: the N
        real tokens as one row [1, N], hidden scattered back; else every row padded
        to T (pad id 0, masked)."""
        dev = self.cfg.device
        rows, t = batch.write_at.shape  # rows >= B: a span view runs idle rows too
        if batch.flat is not None:
            ids = torch.tensor([x for seq in new for x in seq], device=dev)[None]  # [1, N]
            pos = batch.write_at[batch.flat][None]  # [1, N]
        else:
            ids = torch.zeros(rows, t, dtype=torch.long, device=dev)  # [R, T]
            for r, x in zip(batch.index, new, strict=True):
                ids[r, : len(x)] = torch.tensor(x, device=dev)
            pos = batch.write_at  # [R, T]
        pos = pos.clamp(max=self.info.max_context - 1)  # pad rows only
        if self.ragged:  # attention writes the cache and reads mask and plan (engines.ragged)
            with ragged.running(batch):
                out = (self.compiled or self.body)(input_ids=ids, position_ids=pos,
                                                   use_cache=False)  # fmt: skip
        else:
            out = self.body(input_ids=ids, attention_mask=batch.mask, position_ids=pos,
                            past_key_values=batch.cache, use_cache=True)  # fmt: skip
        if batch.flat is None:
            return out.last_hidden_state
        flat_h = out.last_hidden_state[0]  # [N, hidden]
        h = flat_h.new_zeros(rows, t, flat_h.shape[-1])
        h[batch.flat] = flat_h
        return h

    def _check(self, w: SeqWork) -> None:
        check_work(w, self.cache_len(w.seq_id), self.info)
        if any(not 0 <= o < len(w.new_tokens) for o in w.probe_offsets):
            raise ValueError(f"seq {w.seq_id}: probe_offsets must lie in [0, {len(w.new_tokens)})")
        if w.probe_logprobs is not None and len(w.probe_targets) != len(w.probe_offsets):
            raise ValueError(f"seq {w.seq_id}: one probe_target per probe offset is needed")
        if any(not 0 <= o < len(w.new_tokens) for o in w.sample_offsets):
            raise ValueError(f"seq {w.seq_id}: sample_offsets must lie in [0, {len(w.new_tokens)})")
        if w.sample_offsets and w.grammar is not None:
            raise ValueError(f"seq {w.seq_id}: sample_offsets cannot take a grammar")

    def _probe(self) -> None:
        """Check at load that cached, batched logits equal the model's own forward;
        a model the ragged path gets wrong (or cannot run) falls back to padding."""
        if self.ragged:
            try:
                if self.probe_matches():
                    return
            except Exception:  # noqa: BLE001 - any failure of the ragged path: pad instead
                for i in (1, 2, 3):
                    self.free(-i)
            ragged.disable(self.model)
            self.ragged = False
        if not self.probe_matches():
            raise ModelLoadError(
                f"{self.cfg.path}: unsupported architecture {type(self.model).__name__} "
                "(lm_head(final hidden) with a cache differs from its forward logits)"
            )

    @torch.inference_mode()
    def probe_matches(self) -> bool:
        ids = [t % self.info.vocab_size for t in (1, 5, 2, 7, 3)]
        sp = SamplingParams(max_tokens=1)
        self.step([SeqWork(-i, 0, ids[:n], sp, 0) for i, n in ((1, 3), (2, 2), (3, 1))])
        # slots -1: 0, -2: 1, -3: 2 (longest first); uneven past and new; slots 0, 2 are
        # no run (direct when ragged), slots 1, 2 one
        h1, _ = self._forward([-1, -3], [ids[3:], ids[1:2]], [[], []])
        h2, _ = self._forward([-2, -3], [ids[2:4], ids[2:3]], [[], []])
        for i in (1, 2, 3):
            self.free(-i)
        dev = self.cfg.device
        ref = torch.stack(
            [self.model(torch.tensor([x], device=dev)).logits[0, -1]
             for x in (ids, ids[:2], ids[:4], ids[:3])]
        ).float()  # [4, vocab]  # fmt: skip
        got = self.head(torch.cat([h1, h2])).float()
        tol = 1e-3 if self.dtype == torch.float32 else 5e-2
        return torch.allclose(got, ref, atol=tol * float(ref.abs().max()) + tol, rtol=0)
