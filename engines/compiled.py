"""A compiled decoder stack for the hf engine (``HFEngineConfig.compile``).

On a CPU a small model's step costs operator dispatch and Python more than arithmetic:
a demo-SLM decode step at batch 16 makes over 1,100 operator calls and spends about
half its time outside the kernels. ``torch.compile`` (inductor) traces the decoder
stack into fused C++ kernels run from one graph per shape class (BENCHMARKS "Compiled
decoder stacks": 1.1-1.7x per step on the demo pair).

Shapes are dynamic (rows, new tokens, cached positions), so one graph serves every batch
of a kind. Each layer's attention is one opaque operator in that graph
(``engines.ragged.cached_attention``): it writes the KV cache and runs the batch's plan
(Python lists) eagerly, so the cache never enters the graph. Compiling takes seconds
to a minute on a small CPU, so all of it happens at load: ``warm`` runs the engine's own
paths (plain and ragged, one row and several, one new token and several, drafting), and
from then on a call whose guards the warm-up did not cover runs eagerly
(``torch.compiler.set_stance("eager_on_recompile")``) rather than stopping every running
sequence for a compile. The engine's load probe then checks the compiled logits against
the model's own forward. Inductor needs a C++ compiler on the CPU (and Triton on CUDA).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from engines.hf_load import ModelLoadError
from engines.types import SamplingParams, SeqWork

log = logging.getLogger("citer.engines")
GRAPHS_PER_PROCESS = 64  # dynamo's recompile_limit while an engine compiles (default 8)


class CompiledBody:
    """Call it as the decoder stack; compiles while ``frozen`` is False, never after."""

    def __init__(self, body: torch.nn.Module) -> None:
        # every model of one class shares its forward's code object, and dynamo keeps at
        # most recompile_limit graphs per code object (8 by default): an SLM and an LLM
        # of one family take 4 each; room for a few more compiled engines per process
        limit = torch._dynamo.config.recompile_limit
        torch._dynamo.config.recompile_limit = max(limit, GRAPHS_PER_PROCESS)
        self.fn = torch.compile(body, dynamic=True)
        self.frozen = False

    def __call__(self, **kwargs: Any) -> Any:
        if not self.frozen:
            return self.fn(**kwargs)
        with torch.compiler.set_stance("eager_on_recompile"):
            return self.fn(**kwargs)


def attach(engine: Any) -> None:
    """Compile ``engine``'s decoder stack now (an ``engines.hf.HFEngine``), warm it, then
    check it as its eager path was checked: a compiled model that answers differently is
    refused."""
    if not engine.ragged:
        raise ModelLoadError(f"{engine.cfg.path}: compile needs the ragged attention path, "
                             "which this model does not run; serve it uncompiled")  # fmt: skip
    start = time.perf_counter()
    engine.compiled = body = CompiledBody(engine.body)
    warm(engine)
    engine.probe_matches()  # the probe's own forwards compile too
    body.frozen = True
    if not engine.probe_matches():
        raise ModelLoadError(f"{engine.cfg.path}: compiled, its cached batched logits differ "
                             "from its forward; serve it uncompiled")  # fmt: skip
    log.info("compiled %s in %.1f s", engine.cfg.path, time.perf_counter() - start)


def warm(engine: Any) -> None:
    """Run every kind of forward the engine makes through its compiled body (seq ids -1
    .. -4, freed after): uneven prompts (ragged, one run of slots), drafting several
    tokens at batch 3 and 1 (plain, one token a row), a scattered uneven pair (direct),
    one sequence's several tokens (plain, one row) and an even pair (plain, several rows
    of several tokens)."""
    vocab = engine.info.vocab_size
    ids = [t % vocab for t in (5, 9, 7, 3, 8, 6, 4)]
    sp = SamplingParams(max_tokens=8)

    def step(work: list[tuple[int, list[int]]], n_out: int = 1) -> None:
        engine.step([SeqWork(s, engine.cache_len(s), new, sp, 0, n_out=n_out)
                     for s, new in work])  # fmt: skip

    step([(-1, ids[:4]), (-2, ids[:3]), (-3, ids[:2])])
    step([(-1, ids[4:5]), (-2, ids[3:4]), (-3, ids[2:3])], n_out=3)
    step([(-2, ids[:1])], n_out=3)
    step([(-1, ids[:2]), (-3, ids[:1])])  # slots 0 and 2: no run, uneven
    step([(-3, ids[:3])])
    step([(-4, ids[:3])])
    step([(-3, ids[:2]), (-4, ids[:2])])
    for s in (-1, -2, -3, -4):
        engine.free(s)
