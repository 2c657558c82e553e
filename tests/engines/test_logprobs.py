"""Token log-probs: from the model that wrote each token, raw logits, exact under run-ahead."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.async_engine import generate_batch
from engines.types import RequestOutput, SamplingParams, SeqWork
from tests.engines.helpers import ModRouter
from tests.engines.test_scheduler import _hf, assert_freed, prompts, req, sched, trace


def reference_logprobs(path: Path, out: RequestOutput) -> torch.Tensor:
    """log_softmax of a plain HF forward's logits over prompt + completion:
    row i is the distribution of completion token i, [n_completion, vocab]."""
    ids = torch.tensor([out.prompt_ids + out.token_ids])
    with torch.inference_mode():
        logits = _hf(path)(ids).logits[0].float()  # [T, vocab]
    n = len(out.prompt_ids)
    return torch.log_softmax(logits[n - 1 : n - 1 + len(out.token_ids)], dim=-1)


def check_against_producers(model_dirs, out: RequestOutput, k: int) -> None:
    """Each token's log-prob and top-k equal log_softmax(HF logits) of the model that
    wrote it (SLM tokens from the SLM, LLM tokens from the LLM) to 1e-4."""
    ref = {s: reference_logprobs(model_dirs[s == "llm"], out) for s in set(out.sources)}
    assert len(out.logprobs) == len(out.top_logprobs) == len(out.token_ids)
    for i, (tok, src) in enumerate(zip(out.token_ids, out.sources, strict=True)):
        row = ref[src][i]  # [vocab]
        assert out.logprobs[i] == pytest.approx(float(row[tok]), abs=1e-4)
        want_lp, want_ids = row.topk(k)
        top = out.top_logprobs[i]
        assert [t for t, _ in top] == want_ids.tolist()
        assert [lp for _, lp in top] == pytest.approx(want_lp.tolist(), abs=1e-4)


def test_greedy_logprobs_come_from_the_model_that_wrote_each_token(engines, model_dirs) -> None:
    reqs = [req(f"r{i}", p, 16, logprobs=5) for i, p in enumerate(prompts(6))]
    outs = generate_batch(sched(engines, ModRouter(), window=4), reqs)
    assert {src for o in outs for src in o.sources} == {"slm", "llm"}  # both models wrote
    for o in outs:
        check_against_producers(model_dirs, o, 5)
        for tok, top in zip(o.token_ids, o.top_logprobs, strict=True):
            assert top[0][0] == tok  # greedy: the produced token is the most likely one
    assert_freed(engines)


def test_sampled_tokens_report_raw_logprobs_before_temperature(engines, model_dirs) -> None:
    """Documented choice (vLLM's default raw_logprobs): log_softmax of the raw logits,
    not of logits / temperature or the top-p-filtered distribution."""
    sampled = dict(temperature=0.6, top_p=0.8, top_k=10, seed=7)
    reqs = [req(f"r{i}", p, 12, logprobs=3, **sampled) for i, p in enumerate(prompts(3))]
    for o in generate_batch(sched(engines, ModRouter(), window=3), reqs):
        check_against_producers(model_dirs, o, 3)
    assert_freed(engines)


def test_llm_alone_reports_llm_logprobs(engines, model_dirs) -> None:
    from router_models.policies import AlwaysLLM

    reqs = [req(f"r{i}", p, 10, logprobs=2) for i, p in enumerate(prompts(3))]
    outs = generate_batch(sched(engines, AlwaysLLM(), window=4), reqs)
    for o in outs:
        assert set(o.sources) == {"llm"}
        check_against_producers(model_dirs, o, 2)
    assert_freed(engines)


@pytest.mark.parametrize("sampling", [{}, dict(temperature=1.0, top_k=40, seed=3)])
def test_logprobs_are_exact_under_run_ahead(engines, sampling: dict) -> None:
    reqs = [req(f"r{i}", p, 20, logprobs=4, **sampling) for i, p in enumerate(prompts(5))]
    k1 = generate_batch(sched(engines, window=1), reqs)
    k4 = generate_batch(sched(engines, window=4), reqs)
    for a, b in zip(k1, k4, strict=True):
        assert trace(a) == trace(b)
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
        assert [[t for t, _ in top] for top in a.top_logprobs] == [
            [t for t, _ in top] for top in b.top_logprobs
        ]
    assert_freed(engines)


def test_only_requests_that_ask_get_logprobs(engines) -> None:
    ps = prompts(3)
    reqs = [
        req("none", ps[0], 8),
        req("zero", ps[1], 8, logprobs=0),
        req("k", ps[2], 8, logprobs=20),
    ]
    s = sched(engines, window=2)
    for r in reqs:
        s.add_request(r)
    events = []
    while s.has_work():
        events += [e for e in s.step() if e.token_id is not None]
    by = {r.request_id: [e for e in events if e.request_id == r.request_id] for r in reqs}
    assert all(e.logprob is None and e.top_logprobs is None for e in by["none"])
    assert all(e.logprob is not None and e.logprob <= 0.0 for e in by["zero"] + by["k"])
    assert all(e.top_logprobs == [] for e in by["zero"])
    assert all(len(e.top_logprobs) == 20 for e in by["k"])
    for e in by["k"]:  # best first
        lps = [lp for _, lp in e.top_logprobs]
        assert lps == sorted(lps, reverse=True)
    assert_freed(engines)


def test_engine_computes_nothing_when_no_work_asks(engines) -> None:
    slm, _, _ = engines
    greedy, asking = SamplingParams(max_tokens=8), SamplingParams(max_tokens=8, logprobs=1)
    out = slm.step([SeqWork(70, 0, [5, 6, 7], greedy, seed=0, n_out=3)])
    assert out.logprobs is None
    out = slm.step(
        [SeqWork(71, 0, [5, 6], greedy, seed=0, n_out=2), SeqWork(72, 0, [8], asking, 0, 3)]
    )
    assert out.logprobs is not None and out.logprobs[0] == []
    assert len(out.logprobs[1]) == len(out.tokens[1]) == 3  # one per draft
    assert [lp.top[0][0] for lp in out.logprobs[1]] == out.tokens[1]
    for sid in (70, 71, 72):
        slm.free(sid)


@pytest.mark.parametrize("bad", [-1, 21, 2.5])
def test_logprobs_param_is_validated(bad) -> None:
    with pytest.raises(
        ValueError, match=rf"^logprobs={bad!r}: must be None or an integer in \[0, 20\]"
    ):
        SamplingParams(logprobs=bad)
