"""benchmarks.speculative_check: where two answers first differ, and on the float32 demo
pair speculative answers identical to the LLM's, with drafts the LLM kept."""

from __future__ import annotations

from benchmarks.speculative_check import compare, decode, first_difference


def test_first_difference() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2  # one stopped earlier
    assert first_difference([], []) is None


def test_demo_pair_speculative_answers_are_the_llms() -> None:
    from engines.pair import PairConfig, build_pair
    from tasks.splits import load_split

    pair = build_pair(PairConfig("models/demo/slm", "models/demo/llm"))
    items = load_split("test", 3)
    llm, _ = decode(pair, items, 2, 24, False, 4)
    spec, _ = decode(pair, items, 2, 24, True, 4)
    got = compare(llm, spec)
    assert got["items"] == got["identical"] == 3 and got["first_differences"] == []
    assert 0 < got["agreed"] <= 1 and got["drafted_per_token"] >= 1
    assert all(o.stats.drafted_tokens == 0 for o in llm)
