"""Grammar-constrained collaborative decoding: every committed token follows the
request's grammar whichever model wrote it, drafts past a cut leave no trace in
the grammar state, forced tokens never go to the LLM, and unconstrained requests
in the same batch get the tokens they get alone."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from engines.async_engine import generate_batch
from engines.grammar import lark_grammar
from engines.types import Request
from tests.engines.helpers import ConstRouter, ModRouter
from tests.engines.test_scheduler import SAMPLED, assert_freed, prompts, req, sched, trace

# The test vocabulary has no braces, so a Lark grammar stands in for JSON here (the
# gateway tests run JSON schemas on the demo pair). "STOP" is one token and "ST" + "OP"
# two: the grammar must follow multi-character tokens.
LARK = r"""
start: "(" NUM "," WORD "," FLAG ")"
NUM: /[0-9]{1,3}/
WORD: "x" | "yz" | "STOP"
FLAG: "true" | "false"
"""
GRAMMAR = lark_grammar(LARK)
ANSWER = re.compile(r"\(([0-9]{1,3}),(x|yz|STOP),(true|false)\)")
ROUTERS = {"mixed": ModRouter, "slm": lambda: ConstRouter(0.0), "llm": lambda: ConstRouter(1.0)}


def constrained(rid: str, prompt: list[int], seed: int, **kw) -> Request:
    return replace(req(rid, prompt, 60, seed=seed, **SAMPLED, **kw), grammar=GRAMMAR)


def check(text: str) -> None:
    assert ANSWER.fullmatch(text), text


@pytest.mark.parametrize("policy", list(ROUTERS))
@pytest.mark.parametrize("window", [1, 4])
def test_every_answer_parses_and_validates(engines, policy: str, window: int) -> None:
    reqs = [constrained(f"r{i}", p, seed=i) for i, p in enumerate(prompts(12))]
    outs = generate_batch(sched(engines, ROUTERS[policy](), window=window), reqs)
    for o in outs:
        assert o.finish_reason == "stop", (o.text, o.finish_reason)
        check(o.text)
        assert o.stats.forced_tokens >= 1  # '(' is spelled by the grammar alone
    sources = {s for o in outs for s in o.sources}
    assert sources == {"slm": {"slm"}, "llm": {"slm", "llm"}, "mixed": {"slm", "llm"}}[policy]
    assert_freed(engines)


def test_window_and_batch_never_change_tokens(engines) -> None:
    """Drafts rolled back past a cut leave the grammar as the committed tokens left it;
    free requests batched with constrained ones get the tokens they get alone."""
    ps = prompts(8)
    reqs = [constrained(f"g{i}", p, seed=10 + i) for i, p in enumerate(ps[:4])]
    free = [req(f"f{i}", p, 20, seed=20 + i, **SAMPLED) for i, p in enumerate(ps[4:])]
    w1 = generate_batch(sched(engines, window=1), reqs + free)
    w4 = generate_batch(sched(engines, window=4), reqs + free)
    assert [trace(o) for o in w1] == [trace(o) for o in w4]
    alone = generate_batch(sched(engines, window=4), free)
    assert [trace(o) for o in w4[4:]] == [trace(o) for o in alone]
    assert_freed(engines)


def test_forced_positions_never_go_to_the_llm(engines) -> None:
    """Always-LLM scores: every free position goes to the LLM, no forced one does."""
    outs = generate_batch(
        sched(engines, ConstRouter(1.0), window=3),
        [constrained(f"r{i}", p, seed=i) for i, p in enumerate(prompts(6))],
    )
    for o in outs:
        check(o.text)
        assert o.stats.forced_tokens == o.sources.count("slm") > 0
    assert_freed(engines)


def test_a_bad_grammar_is_refused_before_any_work(engines) -> None:
    s = sched(engines)
    bad = replace(req("bad", [5, 6], 8), grammar='{"grammars": [{"lark_grammar": "start: ("}]}')
    with pytest.raises(ValueError, match="grammar"):
        s.add_request(bad)
    assert not s.has_work()


class UnmaskedLLM:
    """The LLM as a remote server is: it samples freely, the scheduler checks its tokens."""

    def __init__(self, llm) -> None:
        self.inner = llm
        self.info = replace(llm.info, masks=False)

    def step(self, work, features=None):
        return self.inner.step([replace(w, grammar=None) for w in work], features)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_an_llm_that_cannot_mask_is_checked_and_fails_open(engines) -> None:
    slm, llm, tok = engines
    outs = generate_batch(
        sched((slm, UnmaskedLLM(llm), tok), ConstRouter(1.0), window=2),
        [constrained(f"r{i}", p, seed=i) for i, p in enumerate(prompts(8))],
    )
    for o in outs:
        check(o.text)
    assert sum(o.stats.llm_fallback_tokens for o in outs) > 0  # the random LLM broke it
    assert sum(o.stats.llm_tokens for o in outs) > 0  # and was kept where it did not
    assert_freed(engines)
