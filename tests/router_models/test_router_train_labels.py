"""Label rules on hand-made cases, rollouts through the real scheduler with scripted engines."""

from __future__ import annotations

import pytest
import torch

from engines.types import EngineInfo, SeqWork, StepOutput
from router_models.base import RouterFeatures
from router_models.policies import AlwaysLLM, AlwaysSLM
from router_models.train.collect import Collection
from router_models.train.labels import (
    LLM,
    ROLLOUT,
    SLM,
    citer_s_labels,
    compared_labels,
    count_flips,
    label_stats,
    rollout_labels,
    shortcut_labels,
)
from router_models.train.outcomes import OutcomeLog
from router_models.train.rollout import RolloutConfig, compared_outcomes, rollout_outcomes

PROMPT, ANSWER = "Q?", "x The answer is 7."


class ScriptEngine:
    """Engine protocol stand-in: the token at position p is ``script(p)``, whatever came before.

    An oracle (script = the reference) keeps writing the reference after any
    forced token, so a forced token changes the answer only where it lands.
    """

    def __init__(self, script, vocab: int, eos: int) -> None:
        self.script = script
        self.info = EngineInfo("script", 4, vocab, 256, (eos,), ("token", "logits", "hidden"))
        self.caches: dict[int, list[int]] = {}

    def step(self, work: list[SeqWork], features=None) -> StepOutput:
        toks, pos = [], []
        for w in work:
            cache = self.caches.setdefault(w.seq_id, [])
            assert w.start == len(cache)
            cache += w.new_tokens
            out: list[int] = []
            for j in range(w.n_out):
                p = len(cache)
                out.append(self.script(p))
                pos.append(p)
                if out[-1] == self.info.eos_token_ids[0] or j == w.n_out - 1:
                    break
                cache.append(out[-1])  # run-ahead drafts enter the cache, like the HF engine
            toks.append(out)
        ids = torch.tensor([t for o in toks for t in o])
        feats = RouterFeatures(
            ids,
            torch.zeros(len(ids), self.info.vocab_size),
            torch.zeros(len(ids), 4),
            [0] * len(ids),
            pos,
        )
        return StepOutput(tokens=toks, features=feats if features is not None else None)

    def cache_len(self, seq_id: int) -> int:
        return len(self.caches.get(seq_id, []))

    def crop(self, seq_id: int, length: int) -> None:
        self.caches[seq_id] = self.caches[seq_id][:length]

    def free(self, seq_id: int) -> None:
        self.caches.pop(seq_id, None)

    def num_caches(self) -> int:
        return len(self.caches)


@pytest.fixture(scope="module")
def case(engines):
    """(collection rows for one item, oracle engine, junk engine, tokenizer)."""
    tok = engines[2]
    eos = tok.eos_token_id
    prompt = tok.encode(PROMPT)
    answer = tok.encode(ANSWER) + [eos]
    full = prompt + answer
    oracle = ScriptEngine(lambda p: full[p] if p < len(full) else eos, len(tok), eos)
    junk = ScriptEngine(lambda p: tok.convert_tokens_to_ids("z"), len(tok), eos)
    seven = ANSWER.index("7")
    # rows: (t, forced SLM token)
    rows = [
        (0, tok.convert_tokens_to_ids("y")),  # harmless deviation -> still right
        (seven, tok.convert_tokens_to_ids("8")),  # changes the answer -> wrong
        (len(answer) - 1, eos),  # SLM ends the answer exactly where the reference does
        (3, eos),  # SLM ends the answer before its answer line -> wrong
    ]
    n = len(rows)
    coll = Collection(
        item_ids=["a"],
        answers=["7"],
        verifiers=["answer-line"],
        prompt_ids=[prompt],
        answer_ids=[answer],
        item=torch.zeros(n, dtype=torch.long),
        t=torch.tensor([r[0] for r in rows]),
        ref=torch.tensor([answer[r[0]] for r in rows]),
        slm=torch.tensor([r[1] for r in rows]),
        llm=torch.tensor([answer[r[0]] for r in rows]),
        hidden=torch.zeros(n, 4),
        topk=torch.zeros(n, 2),
        entropy=torch.zeros(n),
    )
    return coll, oracle, junk, tok


def test_shortcut_rules_cover_all_three_branches() -> None:
    ref = torch.tensor([5, 5, 5, 5])
    slm = torch.tensor([5, 1, 1, 5])
    llm = torch.tensor([9, 5, 2, 5])
    got = shortcut_labels(ref, slm, llm)
    assert got.tolist() == [SLM, LLM, ROLLOUT, SLM]  # rule 1 wins when both agree
    assert citer_s_labels(ref, slm).tolist() == [SLM, LLM, LLM, SLM]
    st = label_stats(got)
    assert (st.slm, st.llm, st.rollout) == (2, 1, 1) and st.shortcut_frac == 0.75
    with pytest.raises(ValueError, match="row counts differ"):
        shortcut_labels(ref, slm[:2], llm)


def test_same_token_rows_go_to_the_slm_only_when_asked() -> None:
    ref = torch.tensor([5, 5, 5, 5])
    slm = torch.tensor([1, 1, 5, 1])
    llm = torch.tensor([1, 2, 5, 5])  # row 0: both leave the reference with one token
    assert shortcut_labels(ref, slm, llm).tolist() == [ROLLOUT, ROLLOUT, SLM, LLM]
    got = shortcut_labels(ref, slm, llm, same_token_slm=True)
    assert got.tolist() == [SLM, ROLLOUT, SLM, LLM]  # rules 1-2 and real rollouts unchanged


def test_rule_two_only_where_the_llm_solves_the_item() -> None:
    ref = torch.tensor([5, 5, 5, 5])
    slm = torch.tensor([1, 1, 1, 5])
    llm = torch.tensor([5, 5, 2, 5])
    solves = torch.tensor([True, False, False, False])
    # LLM matches the reference on rows 0-1, but only row 0's item is one the LLM
    # answers right; on row 1 nothing is at stake, so the cheaper SLM is the label.
    got = shortcut_labels(ref, slm, llm, solves)
    assert got.tolist() == [LLM, SLM, ROLLOUT, SLM]
    assert shortcut_labels(ref, slm, llm).tolist() == [LLM, LLM, ROLLOUT, SLM]
    with pytest.raises(ValueError, match="llm_solves has shape"):
        shortcut_labels(ref, slm, llm, solves[:2])


@pytest.mark.parametrize("policy", ["slm", "llm"])
def test_rollout_verdicts_through_the_scheduler(case, policy: str) -> None:
    coll, oracle, junk, tok = case
    # Whoever writes the continuation is the oracle; the other model writes junk.
    slm, llm, router = (
        (oracle, junk, AlwaysSLM()) if policy == "slm" else (junk, oracle, AlwaysLLM())
    )
    cfg = RolloutConfig(max_tokens=40, slack=4, window=3, concurrency=2)
    verdicts, stats = rollout_outcomes(coll, range(len(coll)), slm, llm, tok, router, 0.5, cfg)
    assert verdicts == [True, False, True, False]
    assert rollout_labels(verdicts).tolist() == [SLM, LLM, SLM, LLM]
    assert stats["decoded"] == 2  # the two eos rows need no decoding
    assert stats["llm_share"] == (1.0 if policy == "llm" else 0.0)
    assert slm.num_caches() == 0 and llm.num_caches() == 0


def test_junk_policy_makes_every_rollout_wrong(case) -> None:
    coll, oracle, junk, tok = case
    cfg = RolloutConfig(max_tokens=40, slack=4, window=2, concurrency=4)
    verdicts, _ = rollout_outcomes(coll, [0, 1], junk, oracle, tok, AlwaysSLM(), 0.5, cfg)
    assert verdicts == [False, False]


def test_compared_rollouts_blame_the_token_only_where_the_llm_token_rescues(case) -> None:
    coll, oracle, junk, tok = case  # the LLM's token is the reference token on every row
    cfg = RolloutConfig(max_tokens=40, slack=4, window=2, concurrency=4)
    rows = range(len(coll))
    # Oracle continuation: the SLM's token is judged alone where it keeps the answer.
    slm_ok, llm_ok, stats = compared_outcomes(coll, rows, oracle, junk, tok, AlwaysSLM(), 0.5, cfg)
    assert slm_ok == [True, False, True, False]
    assert llm_ok == [None, True, None, True]  # only the failed rows rolled out again
    assert compared_labels(slm_ok, llm_ok).tolist() == [SLM, LLM, SLM, LLM]
    assert (stats["llm_forced"], stats["llm_rescued"], stats["decoded"]) == (2, 2, 4)
    # Junk continuation: every rollout from a mid-answer token fails, whoever wrote it.
    # One-sided rollouts blame the SLM's token; compared ones see that the LLM's fails too.
    slm_ok, llm_ok, stats = compared_outcomes(coll, rows, junk, oracle, tok, AlwaysSLM(), 0.5, cfg)
    assert rollout_labels(slm_ok).tolist() == [LLM, LLM, SLM, LLM]
    assert llm_ok == [False, False, None, False]
    assert compared_labels(slm_ok, llm_ok).tolist() == [SLM, SLM, SLM, SLM]
    assert stats["llm_rescued"] == 0
    with pytest.raises(ValueError, match="has no LLM rollout"):
        compared_labels([False], [None])
    with pytest.raises(ValueError, match="force="):
        rollout_outcomes(coll, rows, oracle, junk, tok, AlwaysSLM(), 0.5, cfg, force="ref")


def test_flips_and_config_checks() -> None:
    assert count_flips(torch.tensor([0, 1, 1]), torch.tensor([1, 1, 0])) == 2
    with pytest.raises(ValueError, match="differ in shape"):
        count_flips(torch.tensor([0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="window=0"):
        RolloutConfig(window=0)


def test_an_outcome_log_answers_for_rows_already_rolled_out(case, tmp_path) -> None:
    coll, oracle, junk, tok = case
    cfg = RolloutConfig(max_tokens=40, slack=4, window=2, concurrency=4)
    rows, path = range(len(coll)), tmp_path / "round1-outcomes.jsonl"
    first = compared_outcomes(coll, rows, oracle, junk, tok, AlwaysSLM(), 0.5, cfg,
                              log=OutcomeLog(path, "k1"))  # fmt: skip
    assert first[2]["reused"] == 0
    # The swapped engines would give other verdicts (the test above): none is decoded.
    again = compared_outcomes(coll, rows, junk, oracle, tok, AlwaysSLM(), 0.5, cfg,
                              log=OutcomeLog(path, "k1"))  # fmt: skip
    assert again[:2] == first[:2] and again[2]["reused"] == 4 + 2
    assert {k: v for k, v in again[2].items() if k != "reused"} == {
        k: v for k, v in first[2].items() if k != "reused"
    }
    other = OutcomeLog(path, "k2")  # another policy or setting: started over
    assert len(other) == 0 and path.read_text().splitlines() == ['{"key": "k2"}']
