"""Remote LLM engine: the LLM behind an OpenAI-compatible ``/v1/completions``.

The edge half of an edge + cloud pair (DESIGN.md, "Engines"): the SLM runs here,
the LLM on a server (vLLM, or another citer gateway's ``llm`` model). Token ids
only, never text:

    step(SeqWork per sequence) -> one POST per sequence, all at once:
        {"model", "prompt": [committed prefix token ids], "max_tokens": n_out,
         "temperature", "top_p", "top_k", "seed", "return_token_ids": true}
      <- choices[0].token_ids (vLLM's field; this gateway returns it too)
    failed calls (deadline, unreachable, refused, circuit open) -> StepOutput.failed

The server samples. Every call sends the whole committed prefix, so its prefix
cache does the catch-up (a stateless server re-prefills); the "cache" here is
the list of tokens the server has been sent, kept only to honour the Engine
contract (start == cache_len, crop, free). A citer server draws position p from
the stream (seed, p), as the local engines do, so it gets the request's own
seed; any other server gets a seed mixed with the position, so consecutive
calls of one request never reuse a random stream.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from engines.bookkeeping import TokenCaches, check_work
from engines.remote_client import CallResult, RemoteClient, RemoteError, RemoteStats
from engines.types import EngineInfo, SeqWork, StepOutput, TokenLogprob

log = logging.getLogger("citer.remote")
STARTUP_TIMEOUT_S = 5.0  # the start-up look at GET /models


@dataclass(frozen=True)
class RemoteConfig:
    url: str  # OpenAI-compatible base URL, e.g. http://cloud:8000/v1 (/v1 added if missing)
    model: str = "llm"  # served model name; a citer gateway's "llm" is its LLM alone
    api_key: str | None = None  # Bearer key of the server; None: no Authorization header
    deadline_s: float = 2.0  # longest wait for one step's LLM tokens, retries included
    retries: int = 2  # more attempts after a connection error, 429 or 5xx (deadline allowing)
    backoff_s: float = 0.05  # wait before retry i (from 1): backoff_s * 2**(i-1) seconds
    pool_size: int = 32  # persistent connections = LLM calls in flight at once
    cooldown_s: float = 1.0  # after a step whose calls all failed: no calls this long (x2..16)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"llm_url={self.url!r}: must be an http:// or https:// URL")
        if not self.model:
            raise ValueError("llm_model='': must name the server's model")
        if not self.deadline_s > 0:
            raise ValueError(f"llm_deadline_s={self.deadline_s!r}: must be > 0")
        if self.retries < 0:
            raise ValueError(f"llm_retries={self.retries!r}: must be >= 0")
        if not self.backoff_s >= 0:
            raise ValueError(f"llm_backoff_s={self.backoff_s!r}: must be >= 0")
        if self.pool_size < 1:
            raise ValueError(f"llm_pool_size={self.pool_size!r}: must be >= 1")
        if not self.cooldown_s >= 0:
            raise ValueError(f"llm_cooldown_s={self.cooldown_s!r}: must be >= 0")

    @property
    def base_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"


def _mixed_seed(seed: int, position: int) -> int:
    """A seed for one call of a server with per-request random streams (int64 >= 0)."""
    h = hashlib.blake2b(f"{seed}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def _token_id(name: str) -> int:
    """'token_id:123' (vLLM's return_tokens_as_token_ids) -> 123."""
    head, _, num = name.partition(":")
    if head != "token_id" or not num.isdigit():
        raise ValueError(f"log-prob token {name!r} is not 'token_id:<id>'")
    return int(num)


class RemoteEngine(TokenCaches):
    """Engine protocol (``engines.types.Engine``) over an HTTP LLM server; LLM only."""

    def __init__(
        self, cfg: RemoteConfig, vocab_size: int, eos_token_ids: tuple[int, ...], max_context: int
    ) -> None:
        self.cfg = cfg
        self.client = RemoteClient(
            cfg.base_url, cfg.api_key, cfg.deadline_s, cfg.retries, cfg.backoff_s,
            cfg.pool_size, cfg.cooldown_s,
        )  # fmt: skip
        self.vocab_size = vocab_size
        super().__init__()  # _seqs: tokens the server was sent and answered on
        self.positional: bool | None = None  # the server draws position p from (seed, p)
        try:
            card = self._model_card(STARTUP_TIMEOUT_S)
        except Exception:
            self.close()
            raise
        if card is not None:
            max_context = min(max_context, int(card.get("max_model_len") or max_context))
        self.info = EngineInfo(
            name=f"{cfg.model} at {cfg.base_url}",
            hidden_size=0,  # no hidden states leave the server
            vocab_size=vocab_size,
            max_context=max_context,
            eos_token_ids=eos_token_ids,
            features=(),
            fallible=True,
        )

    @property
    def stats(self) -> RemoteStats:
        return self.client.stats

    def _model_card(self, timeout_s: float) -> dict[str, Any] | None:
        """The served model's card from GET /models; None if the server cannot be reached
        (fail open: SLM tokens until it answers). A server that answers but does not
        serve the model, or refuses the key, is a configuration error (ValueError)."""
        url = self.cfg.base_url
        try:
            r = self.client.get("models", timeout_s)
        except RemoteError as e:
            log.warning("remote LLM %s: %s; the SLM writes its tokens until it answers", url, e)
            return None
        if r.status_code in (401, 403):
            raise ValueError(f"remote LLM {url} refused the API key (CITER_LLM_API_KEY)")
        if r.status_code != 200:
            log.warning("remote LLM %s: GET /models answered %s", url, r.status_code)
            return None
        try:
            cards = {c.get("id"): c for c in r.json().get("data", [])}
        except (ValueError, AttributeError) as e:
            raise ValueError(
                f"remote LLM {url}: GET /models is not an OpenAI model list ({e})"
            ) from e
        if self.cfg.model not in cards:
            raise ValueError(
                f"remote LLM {url} does not serve model {self.cfg.model!r} (it serves "
                f"{sorted(map(str, cards))}); set CITER_LLM_MODEL to one of them"
            )
        card = cards[self.cfg.model]
        self.positional = card.get("owned_by") == "citer"
        return card

    def close(self) -> None:
        self.client.close()

    @property
    def circuit_open(self) -> bool:
        """LLM calls are being skipped after failures (the SLM writes those tokens)."""
        return self.client.circuit_open

    # -- calls ---------------------------------------------------------------
    def step(self, work: list[SeqWork], features: tuple[str, ...] | None = None) -> StepOutput:
        if features:
            raise ValueError("the remote engine gives no router features: it serves the LLM")
        for w in work:
            self._check(w)
        prefixes = [self._seqs.get(w.seq_id, []) + w.new_tokens for w in work]
        bodies = [self._body(w, p) for w, p in zip(work, prefixes, strict=True)]
        results = self.client.post_all(bodies, lambda i, data: self._parse(work[i], data))
        if self.positional is None and any(r.reason is None for r in results):
            try:  # the server was down at start-up: learn its seed semantics now
                self._model_card(self.cfg.deadline_s)
            except ValueError as e:  # its calls work; keep using it
                log.warning("%s", e)
        return self._collect(work, prefixes, results)

    def _collect(
        self, work: list[SeqWork], prefixes: list[list[int]], results: list[CallResult]
    ) -> StepOutput:
        tokens: list[list[int]] = []
        lps: list[list[TokenLogprob]] = []
        failed: list[str | None] = []
        for w, prefix, r in zip(work, prefixes, results, strict=True):
            failed.append(r.reason)
            if r.reason is not None:  # the cache stays at w.start
                tokens.append([])
                lps.append([])
                continue
            toks, tlps = r.value
            self._seqs[w.seq_id] = prefix + toks[:-1]  # the last token is not fed (Engine)
            self.stats.tokens_sent += len(prefix)
            self.stats.tokens_received += len(toks)
            tokens.append(toks)
            lps.append(tlps)
        ask_lp = any(w.sampling.logprobs is not None for w in work)
        return StepOutput(
            tokens=tokens,
            logprobs=lps if ask_lp else None,
            failed=failed if any(f is not None for f in failed) else None,
        )

    def _body(self, w: SeqWork, prefix: list[int]) -> dict[str, Any]:
        sp = w.sampling
        seed = w.seed if self.positional else _mixed_seed(w.seed, len(prefix))
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "prompt": prefix,
            "max_tokens": w.n_out,
            "temperature": sp.temperature,
            "top_p": sp.top_p,
            "seed": seed,
            "return_token_ids": True,
        }
        if sp.top_k:
            body["top_k"] = sp.top_k
        if sp.logprobs is not None:
            body["logprobs"] = sp.logprobs
            body["return_tokens_as_token_ids"] = True
        return body

    def _parse(self, w: SeqWork, data: Any) -> tuple[list[int], list[TokenLogprob]]:
        """(token ids, their log-probs if asked) of an answer; ValueError if unusable."""
        choice = data["choices"][0]
        ids = choice.get("token_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= w.n_out:
            raise ValueError(
                f"choices[0].token_ids={ids!r:.80}: expected 1..{w.n_out} token ids "
                "(the server must support return_token_ids)"
            )
        if not all(isinstance(t, int) and 0 <= t < self.vocab_size for t in ids):
            raise ValueError(f"token ids outside [0, {self.vocab_size}): not the SLM's vocabulary")
        usage, routing = data.get("usage") or {}, data.get("routing") or {}
        if usage.get("slm_tokens") or routing.get("degraded"):  # a citer server's own SLM
            raise ValueError("the server's SLM wrote tokens (its budget or LLM-share limits)")
        k = w.sampling.logprobs
        if k is None:
            return ids, []
        lp = choice["logprobs"]
        out = []
        for j in range(len(ids)):
            top = sorted(((_token_id(n), float(v)) for n, v in lp["top_logprobs"][j].items()),
                         key=lambda x: -x[1])  # fmt: skip
            out.append(TokenLogprob(float(lp["token_logprobs"][j]), tuple(top[:k])))
        return ids, out

    def _check(self, w: SeqWork) -> None:
        check_work(w, self.cache_len(w.seq_id), self.info, check_ids=False)
        if w.probe_offsets:
            raise ValueError("the remote engine has no probe rows (teacher forcing runs locally)")
