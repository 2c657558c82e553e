"""Fault isolation: an exception in a step fails only the sequences it belongs to.

The fault is injected into one sequence's work through a wrapper around the real
HF engines (a fault a well-formed request cannot produce any more); the other
sequences must finish with exactly the tokens they get without the poisoned one.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from engines.async_engine import generate_batch
from engines.isolation import isolate
from engines.sampling import sample
from engines.types import FINISH_ERROR, SamplingParams
from tests.engines.helpers import ConstRouter, ModRouter
from tests.engines.test_scheduler import assert_freed, prompts, req, sched, trace

POISON = 666  # the seed of the request whose work raises


class Poisoned:
    """An engine that raises whenever a batch holds work of the POISON seed."""

    def __init__(self, inner) -> None:
        self.inner, self.info, self.calls = inner, inner.info, 0

    def step(self, work, features=None):
        self.calls += 1
        if any(w.seed == POISON for w in work):
            raise OverflowError("injected: Overflow when unpacking long long")
        return self.inner.step(work, features)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_isolate_bisects_to_the_culprits_and_keeps_order() -> None:
    calls: list[list[int]] = []
    restored: list[list[int]] = []

    def run(group: list[int]) -> int:
        calls.append(group)
        if 3 in group or 6 in group:
            raise ValueError("bad")
        return sum(group)

    ok, failed = isolate(list(range(8)), run, restored.append)
    assert [e.args for _, e in failed] == [("bad",), ("bad",)]
    assert [item for item, _ in failed] == [3, 6]
    assert sorted(x for group, _ in ok for x in group) == [0, 1, 2, 4, 5, 7]
    assert [g for g, _ in ok] == sorted((g for g, _ in ok), key=lambda g: g[0])  # input order
    assert all(r == sum(g) for g, r in ok)
    assert restored[0] == list(range(8))  # every failed group is restored before a retry


@pytest.mark.parametrize("where", ["slm", "llm"])
@pytest.mark.parametrize("window", [1, 4])
def test_a_poisoned_sequence_fails_alone_and_the_batch_keeps_its_tokens(
    engines, where, window
) -> None:
    slm, llm, tok = engines
    ps = prompts(6)
    kw = dict(temperature=1.0, top_k=40, top_p=0.95)
    reqs = [req(f"r{i}", p, max_tokens=12, seed=i, **kw) for i, p in enumerate(ps)]
    want = {o.request_id: trace(o) for o in generate_batch(sched(engines, window=window), reqs)}

    poisoned = (Poisoned(slm), llm) if where == "slm" else (slm, Poisoned(llm))
    s = sched((*poisoned, tok), ModRouter(), window=window)
    bad = req("bad", ps[2], max_tokens=12, seed=POISON, **kw)
    outs = {o.request_id: o for o in generate_batch(s, [*reqs[:3], bad, *reqs[3:]])}
    assert outs["bad"].finish_reason == FINISH_ERROR
    for rid, tokens in want.items():
        assert outs[rid].finish_reason != FINISH_ERROR, rid
        assert trace(outs[rid]) == tokens, rid
    assert_freed(engines)


def test_an_all_llm_batch_isolates_too(engines) -> None:
    slm, llm, tok = engines
    reqs = [req(f"r{i}", p, max_tokens=8, seed=i) for i, p in enumerate(prompts(4))]
    want = {o.request_id: o.token_ids for o in generate_batch(sched(engines, ConstRouter(1)), reqs)}
    s = sched((slm, Poisoned(llm), tok), ConstRouter(1))
    bad = req("bad", prompts(1)[0], max_tokens=8, seed=POISON)
    outs = {o.request_id: o for o in generate_batch(s, [bad, *reqs])}
    assert outs["bad"].finish_reason == FINISH_ERROR
    assert {rid: outs[rid].token_ids for rid in want} == want
    assert_freed(engines)


def test_a_commit_that_raises_fails_only_its_sequence(engines) -> None:
    """A detokenizer fault (one sequence's commit) leaves the rest of the step intact."""
    slm, llm, tok = engines
    reqs = [req(f"r{i}", p, max_tokens=10, seed=i) for i, p in enumerate(prompts(4))]
    want = {o.request_id: trace(o) for o in generate_batch(sched(engines), reqs)}
    s = sched(engines, ModRouter())
    s.add_request(reqs[0])
    s.step()  # r0 admitted: break its detokenizer
    seq = s.running["r0"]

    def boom(token: int):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "injected")

    seq.detok.add = boom  # type: ignore[method-assign]
    outs = {o.request_id: o for o in generate_batch(s, reqs[1:])}
    assert {rid: trace(outs[rid]) for rid in outs} == {rid: want[rid] for rid in outs}
    while s.has_work():
        s.step()
    assert "r0" not in s.running
    assert_freed(engines)


@pytest.mark.parametrize(
    "params",
    [
        dict(temperature=1.0, top_k=1180591620717411303424),
        dict(temperature=1.0, top_p=1e-320),
        dict(temperature=1e-320),
        dict(temperature=1e-6, top_p=0.5),
    ],
)
def test_extreme_sampling_values_sample_without_error(engines, params) -> None:
    """Tiny temperatures are greedy, huge top_k is off, tiny top_p keeps the top token."""
    logits = torch.randn(3, 100)
    sp = SamplingParams(max_tokens=4, **params)
    assert (sp.temperature == 0.0) == (params["temperature"] < 1e-5)  # normalised when built
    got = sample(logits, [sp] * 3, [1, 2, 3], [5, 6, 7])
    if sp.temperature == 0.0 or sp.top_p < 1e-6:
        assert got.tolist() == logits.argmax(-1).tolist()
    out = generate_batch(sched(engines), [replace(req("x", [5, 6, 7]), sampling=sp)])
    assert out[0].finish_reason in ("stop", "length") and len(out[0].token_ids) <= 4


@pytest.mark.parametrize(
    "field", [{"max_tokens": True}, {"max_tokens": "64"}, {"top_k": 1.5}, {"temperature": True},
              {"temperature": float("inf")}, {"top_p": float("nan")}, {"seed": False}],
)  # fmt: skip
def test_sampling_params_are_strictly_typed(field) -> None:
    with pytest.raises(ValueError, match=next(iter(field))):
        SamplingParams(**field)


class BadCrop(Poisoned):
    """An SLM whose crop raises for the POISON request's cache (seen in its step work):
    a crop runs at a commit and, for a sequence cut short, after its LLM pass."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.bad: set[int] = set()

    def step(self, work, features=None):
        self.bad |= {w.seq_id for w in work if w.seed == POISON}
        return self.inner.step(work, features)

    def crop(self, seq_id: int, length: int) -> None:
        if seq_id in self.bad:
            raise RuntimeError("injected: crop failed")
        self.inner.crop(seq_id, length)


def test_a_crop_that_raises_fails_only_its_sequence(engines) -> None:
    slm, llm, tok = engines
    ps = prompts(6)
    reqs = [req(f"r{i}", p, max_tokens=16, seed=i) for i, p in enumerate(ps)]
    want = {o.request_id: trace(o) for o in generate_batch(sched(engines, ModRouter()), reqs)}
    bad_slm = BadCrop(slm)
    s = sched((bad_slm, llm, tok), ModRouter())
    bad = req("bad", ps[2], max_tokens=16, seed=POISON)
    outs = {o.request_id: o for o in generate_batch(s, [*reqs[:3], bad, *reqs[3:]])}
    assert outs["bad"].finish_reason == FINISH_ERROR
    assert {rid: trace(outs[rid]) for rid in want} == want
    assert_freed(engines)
