"""GPU projection of token routing: a cost model, not a measurement.

It combines a routing trace measured on the demo pair (per generated token: SLM
forward passes d, LLM calls c, and the host time h the CPU spent in scheduling,
routing and the gateway) with published batch-1 decode latencies of a real pair
on one GPU (t_slm, t_llm in ms per token):

    projected ms/token = d * t_slm + c * t_llm  (+ h, measured on this machine)

Assumptions, each stated in the report: on a GPU batch-1 decode is memory-bound,
so an LLM call that catches up on a few committed SLM tokens and then produces one
costs about one decode step (t_llm), and so does the SLM's extend-then-draft pass
(t_slm); the router (an MLP over one hidden state) costs nothing next to them; the
routing decisions of a real pair would match the demo pair's trace. Published
figures are tokens/s at batch 1 for (1 prompt token + 2048 generated), read here as
1000 / speed ms per token.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedPair:
    name: str  # e.g. "Qwen2.5-0.5B / 7B-Instruct"
    gpu: str
    stack: str  # serving engine and precision the source measured
    slm_tok_s: float  # published batch-1 decode speed of the small model, tokens/s
    llm_tok_s: float  # ... of the large model, tokens/s
    source: str  # where the two figures are published

    @property
    def t_slm_ms(self) -> float:
        return 1000.0 / self.slm_tok_s

    @property
    def t_llm_ms(self) -> float:
        return 1000.0 / self.llm_tok_s


# Vendor-published batch-1 speeds (input length 1, 2048 generated tokens, BF16). We
# found no vendor figure for a Qwen pair at batch 1 on an H100; these are the
# nearest published ones (A100 80GB, H20 96GB), used as they stand.
PAIRS = (
    PublishedPair(
        "Qwen2.5-0.5B / Qwen2.5-7B (Instruct)", "A100 80GB", "vLLM 0.6.3, BF16",
        311.55, 84.28,
        "Qwen team, Qwen2.5 Speed Benchmark, 7B and 0.5B vLLM tables: github.com/QwenLM/"
        "Qwen2.5 docs/source/getting_started/speed_benchmark.rst (qwen.readthedocs.io)",
    ),
    PublishedPair(
        "Qwen3-0.6B / Qwen3-8B", "H20 96GB", "SGLang 0.4.6.post1, BF16",
        414.17, 81.73,
        "Qwen team, Qwen3 Speed Benchmark, SGLang tables: same repository, "
        "docs/source/getting_started/speed_benchmark.md (qwen.readthedocs.io)",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Trace:
    """A routing trace measured through the gateway, per generated token."""

    target: str  # the served model name: citer:0.2, slm, llm
    llm_share: float  # LLM-written / all completion tokens
    llm_calls_per_token: float  # c: per-sequence LLM calls / completion tokens
    slm_forwards_per_token: float  # d: SLM-drafted positions / completion tokens
    host_ms_per_token: float | None = None  # h: measured scheduler + router + gateway time


@dataclass(frozen=True)
class Projection:
    target: str
    pair: str
    ms_per_token: float  # d * t_slm + c * t_llm
    speedup: float  # LLM-only ms/token over ms_per_token
    ms_per_token_host: float | None  # plus the measured host time
    speedup_host: float | None  # same, both sides with their own host time


def model_ms(trace: Trace, pair: PublishedPair) -> float:
    """Projected device time per generated token, ms. LLM-only decodes one LLM token
    per forward and SLM-only one SLM token, whatever their traces say about calls
    (the LLM-alone path makes one call per run of up to k tokens)."""
    if trace.target == "llm":
        return pair.t_llm_ms
    if trace.target == "slm":
        return pair.t_slm_ms
    return trace.slm_forwards_per_token * pair.t_slm_ms + trace.llm_calls_per_token * pair.t_llm_ms


def project(traces: list[Trace], pair: PublishedPair) -> list[Projection]:
    """One projection per trace; speed-ups against the ``llm`` trace of the same list."""
    base = next((t for t in traces if t.target == "llm"), None)
    if base is None:
        raise ValueError("project: the traces need an LLM-only ('llm') baseline")
    base_ms = model_ms(base, pair)
    out = []
    for t in traces:
        ms = model_ms(t, pair)
        host = speedup_host = None
        if t.host_ms_per_token is not None and base.host_ms_per_token is not None:
            host = ms + t.host_ms_per_token
            speedup_host = round((base_ms + base.host_ms_per_token) / host, 3)
            host = round(host, 3)
        out.append(Projection(t.target, pair.name, round(ms, 3), round(base_ms / ms, 3),
                              host, speedup_host))  # fmt: skip
    return out


def cost_bound(llm_share: float, slm_per_llm: float) -> float:
    """Speed-up over LLM-only if each token cost only its writer's decode step (no
    drafts wasted): 1 / (r + (1 - r) * t_slm / t_llm), ``slm_per_llm`` = t_slm / t_llm."""
    return 1.0 / (llm_share + (1.0 - llm_share) * slm_per_llm)


def share_bound(llm_share: float, pair: PublishedPair) -> float:
    """The cost-model bound with a published pair's per-token decode times."""
    return cost_bound(llm_share, pair.t_slm_ms / pair.t_llm_ms)
