"""Does speculative drafting pay on this machine? Timed at start-up, per batch size.

    for b = 1, 2, 4, ... up to the batch limit:
        draft   the SLM drafts `window` tokens for b sequences (one engine step)
        verify  the LLM feeds b x (window + 1) tokens and samples at each (one pass)
        decode  the LLM writes one token for b sequences (one pass: the LLM alone)
        gain    decode x E / (draft + verify), E = tokens a verify pass settles per
                sequence when each draft is kept with probability ACCEPTANCE
    the limit is the last b whose gain >= 1 (stop at the first that loses)

While serving, ``engines.draft_gate`` predicts the limit again from these rows with the
share of drafts the LLM has actually kept.

Why measure: whether a verify pass over several tokens costs about what a one-token
pass costs depends on the hardware, not the models alone. On a CPU without AVX-512 a
bf16 pass is compute-bound from its second row (the real pair's 1.5B: 1 x 5 tokens cost
4.4x 1 x 1), and drafting ran 0.62x the LLM alone; with AVX-512 it ran 1.38x at one
sequence; the demo pair gains up to 64 (BENCHMARKS.md, "Speculative decoding").
Speculative tokens are the LLM's own either way: this only decides the speed.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass

from engines.types import Engine, SamplingParams, SeqWork

log = logging.getLogger("citer.engines")

# Probability that the LLM keeps a draft, for the gain's expected tokens per verify
# pass. Measured drafts kept, greedy: 0.90 (real pair, GSM8K), 0.92 (demo pair); set
# below them since sampled requests keep fewer.
ACCEPTANCE = 0.85
# Cached tokens of the i-th probe sequence (i = 0, 1, ...) before each timed pass:
# PROMPT (at most a quarter of the pair's context) + STAGGER x (i mod 8), within the
# context, since serving batches hold sequences of different lengths.
PROMPT = 128
STAGGER = 16
# Timed passes per measurement (median): at least MIN_REPS, more while they add up to
# under BUDGET_S (a millisecond pass is noisy), after WARMUP untimed ones.
MIN_REPS, MAX_REPS, BUDGET_S, WARMUP = 3, 50, 0.3, 1


@dataclass(frozen=True)
class ProbeRow:
    batch: int
    draft_s: float  # SLM: `window` drafts for `batch` sequences (one engine step)
    verify_s: float  # LLM: batch x (window + 1) tokens, sampled at each
    decode_s: float  # LLM: one token for `batch` sequences
    gain: float  # speculative tokens/s over the LLM alone's, predicted


@dataclass(frozen=True)
class SpecProbe:
    max_batch: int  # drafting pays up to this many running sequences (0: never)
    window: int
    acceptance: float
    rows: tuple[ProbeRow, ...]
    reason: str  # why the probe stopped where it did

    def describe(self) -> dict:
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}


def expected_tokens(acceptance: float, window: int) -> float:
    """Tokens one verify pass settles per sequence: the kept drafts (up to the first
    the LLM refuses) plus the LLM's own next token, sum of acceptance**i, i = 0..window."""
    return sum(acceptance**i for i in range(window + 1))


def gain(row_costs: tuple[float, float, float], window: int, acceptance: float) -> float:
    """(draft_s, verify_s, decode_s) -> predicted speed-up of drafting over the LLM alone."""
    draft, verify, decode = row_costs
    return decode * expected_tokens(acceptance, window) / (draft + verify)


def limit_for(rows: tuple[ProbeRow, ...] | list[ProbeRow], window: int, acceptance: float) -> int:
    """The last timed batch size whose gain at ``acceptance`` is >= 1, stopping at the
    first that loses (0 if the first does); sizes past the last timed one are not known."""
    limit = 0
    for r in rows:
        if gain((r.draft_s, r.verify_s, r.decode_s), window, acceptance) < 1.0:
            break
        limit = r.batch
    return limit


def batches(limit: int) -> list[int]:
    """1, 2, 4, ... below ``limit``, then ``limit`` itself."""
    out, b = [], 1
    while b < limit:
        out.append(b)
        b *= 2
    return [*out, limit] if limit >= 1 else []


def probe(slm: Engine, llm: Engine, window: int, limit: int,
          acceptance: float = ACCEPTANCE) -> SpecProbe:  # fmt: skip
    """Time the three passes at growing batch sizes up to ``limit`` (the scheduler's
    max_batch); stop at the first size where drafting loses. Caches used: ids
    -1, -2, ..., freed before returning (the scheduler's ids are >= 0). An LLM that
    settles one position a pass never drafts, so it is not timed."""
    if not llm.info.verifies:
        return SpecProbe(0, window, acceptance, (), "not timed: the LLM engine settles one "
                         "position a pass")  # fmt: skip
    vocab = min(slm.info.vocab_size, llm.info.vocab_size)
    rows: list[ProbeRow] = []
    reason = f"drafting paid up to the batch limit ({limit})"
    for b in batches(limit):
        ids = [-1 - i for i in range(b)]
        try:
            costs = _time_batch(slm, llm, ids, window, vocab)
        except (RuntimeError, MemoryError) as e:  # e.g. device memory: keep what was timed
            reason = f"timing {b} sequences failed ({type(e).__name__}: {e})"
            log.warning("speculative probe: %s", reason)
            break
        finally:
            for i in ids:
                slm.free(i)
                llm.free(i)
        rows.append(ProbeRow(b, *costs, gain(costs, window, acceptance)))
        log.info("speculative probe: %d sequences: drafts %.1f ms, verify %.1f ms, decode "
                 "%.1f ms: predicted %.2fx the LLM alone", b, costs[0] * 1e3, costs[1] * 1e3,
                 costs[2] * 1e3, rows[-1].gain)  # fmt: skip
        if rows[-1].gain < 1.0:
            reason = f"drafting lost at {b} sequences ({rows[-1].gain:.2f}x)"
            break
    return SpecProbe(limit_for(rows, window, acceptance), window, acceptance, tuple(rows), reason)


def _time_batch(slm: Engine, llm: Engine, ids: list[int], window: int,
                vocab: int) -> tuple[float, float, float]:  # fmt: skip
    greedy = SamplingParams(temperature=0.0, max_tokens=window + 1)
    ctx = min(slm.info.max_context, llm.info.max_context) - window - 2
    base = min(PROMPT, ctx // 4)
    held = {i: min(base + STAGGER * ((-1 - i) % 8), ctx) for i in ids}  # ids: -1, -2, ...
    for engine in (slm, llm):
        engine.step([SeqWork(i, 0, [(7 * n + j) % vocab for j in range(n)], greedy, 0)
                     for i, n in held.items()])  # fmt: skip

    def draft(r: int) -> tuple[Engine, list[SeqWork]]:
        return slm, [SeqWork(i, n, [(r + i) % vocab], greedy, 0, n_out=window)
                     for i, n in held.items()]  # fmt: skip

    def verify(r: int) -> tuple[Engine, list[SeqWork]]:
        toks = [(11 * r + j) % vocab for j in range(window + 1)]
        offsets = tuple(range(window))
        return llm, [SeqWork(i, n, toks, greedy, 0, sample_offsets=offsets)
                     for i, n in held.items()]  # fmt: skip

    def decode(r: int) -> tuple[Engine, list[SeqWork]]:
        return llm, [SeqWork(i, n, [(r + i) % vocab], greedy, 0) for i, n in held.items()]

    return tuple(_median(make) for make in (draft, verify, decode))  # type: ignore[return-value]


def _median(make) -> float:  # noqa: ANN001 - r -> (engine, work of one pass)
    times: list[float] = []
    r = 0
    while len(times) < MIN_REPS or (len(times) < MAX_REPS and sum(times) < BUDGET_S):
        engine, work = make(r)
        t = time.perf_counter()
        out = engine.step(work)
        t = time.perf_counter() - t
        # drafting stops at an end-of-sequence token: scale to whole windows
        made = sum(map(len, out.tokens)) / sum(w.n_out for w in work)
        if r >= WARMUP:
            times.append(t / made)
        for w in work:
            engine.crop(w.seq_id, w.start)
        r += 1
    return statistics.median(times)
