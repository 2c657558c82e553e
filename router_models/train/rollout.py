"""Rollouts and routed decoding through the real scheduler.

    rows needing a label --prompt + reference[:t] + SLM token--> Request per row
      --Scheduler(slm, llm, current policy), greedy, batched--> completions
      --tasks.verify.is_correct(reference[:t] + SLM token + completion)--> right / wrong

The scheduler is the serving one (SLM drafts a window, the router scores,
the LLM writes where the score exceeds the threshold), so a rollout follows
exactly the policy the router will be served with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from engines.async_engine import OutputBuilder
from engines.scheduler import Scheduler, SchedulerConfig
from engines.stats import StepStats
from engines.types import Request, RequestOutput, RoutingParams, SamplingParams
from router_models.policies import AlwaysLLM, AlwaysSLM
from router_models.train.collect import Collection, encode
from router_models.train.outcomes import Outcome, OutcomeLog
from tasks.evaluate import MAX_NEW_TOKENS
from tasks.types import Item
from tasks.verify import is_correct

ANSWER_MAX_TOKENS = MAX_NEW_TOKENS  # whole answers, as citer eval decodes them
FORCED = ("slm", "llm")  # whose drafted token a rollout forces


@dataclass(frozen=True)
class RolloutConfig:
    max_tokens: int = MAX_NEW_TOKENS  # cap on tokens generated after the forced SLM token
    slack: int = 24  # tokens allowed beyond what is left of the reference answer
    window: int = 4  # SLM run-ahead drafts per scheduler step
    concurrency: int = 32  # sequences decoded together

    def __post_init__(self) -> None:
        for name in ("max_tokens", "window", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"rollout {name}={getattr(self, name)}: must be >= 1")
        if self.slack < 0:
            raise ValueError(f"rollout slack={self.slack}: must be >= 0")


def routed_generate(
    slm: Any,
    llm: Any,
    tokenizer: Any,
    router: Any,
    threshold: float,
    prompts: Sequence[list[int]],
    max_tokens: Sequence[int],
    *,
    window: int = 4,
    concurrency: int = 32,
    desc: str = "decode",
    on_finish: Callable[[int, RequestOutput], None] | None = None,
) -> tuple[list[RequestOutput], StepStats]:
    """Greedy routed decoding of ``prompts``; outputs in input order, summed step stats.

    ``on_finish(i, output)`` is called as prompt i's decode finishes.
    """
    sched = Scheduler(
        slm, llm, router, tokenizer, SchedulerConfig(window=window, max_batch=concurrency, seed=0)
    )
    rp = RoutingParams(threshold=threshold)
    builders: dict[str, OutputBuilder] = {}
    for i, (p, n) in enumerate(zip(prompts, max_tokens, strict=True)):
        req = Request(str(i), list(p), SamplingParams(max_tokens=n, temperature=0.0, seed=0), rp)
        sched.add_request(req)
        builders[req.request_id] = OutputBuilder(req)
    with tqdm(total=len(builders), desc=desc, unit="seq", leave=False) as bar:
        while sched.has_work():
            for ev in sched.step():
                builders[ev.request_id].add(ev)
                if ev.finish_reason is not None:
                    bar.update(1)
                    out = builders[ev.request_id].output
                    if on_finish is not None and out is not None:
                        on_finish(int(ev.request_id), out)
    outs = [b.output for b in builders.values()]
    if any(o is None for o in outs):
        raise RuntimeError("a rollout ended without a final event")
    return outs, sched.totals  # type: ignore[return-value]


def answer_text(tokenizer: Any, ids: Sequence[int]) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def rollout_outcomes(
    coll: Collection,
    rows: Sequence[int],
    slm: Any,
    llm: Any,
    tokenizer: Any,
    router: Any,
    threshold: float,
    cfg: RolloutConfig,
    *,
    desc: str = "rollouts",
    force: str = "slm",
    log: OutcomeLog | None = None,
) -> tuple[list[bool], dict[str, float]]:
    """Verifier verdict per row after forcing one model's token there; (verdicts, stats).

    ``force`` names whose drafted token is forced at the row's position: "slm" (the
    action judged by rule 3) or "llm" (the alternative, for compared rollouts). Rows
    ``log`` holds are not decoded again; each new outcome is added to it as it finishes.
    """
    if force not in FORCED:
        raise ValueError(f"force={force!r}: must be one of {FORCED}")
    drafted = coll.slm if force == "slm" else coll.llm
    eos = set(slm.info.eos_token_ids) | {tokenizer.eos_token_id}
    got: dict[int, Outcome] = {}  # position in rows -> outcome
    prompts: list[list[int]] = []
    budgets: list[int] = []
    prefixes: list[list[int]] = []
    todo: list[int] = []
    reused = 0

    def keep(k: int, o: Outcome) -> None:
        got[k] = o
        if log is not None:
            log.put(force, int(rows[k]), o)

    for k, r in enumerate(rows):
        if log is not None and (o := log.get(force, int(r))) is not None:
            got[k], reused = o, reused + 1
            continue
        i, t, tok = int(coll.item[r]), int(coll.t[r]), int(drafted[r])
        prefix = coll.answer_ids[i][:t] + [tok]  # answer so far, the drafted token forced
        if tok in eos:  # the forced token ends the answer here: nothing to decode
            text = answer_text(tokenizer, prefix)
            keep(k, Outcome(is_correct(text, coll.answers[i], coll.verifiers[i]), decoded=False))
            continue
        left = len(coll.answer_ids[i]) - t - 1  # reference tokens after this position
        prompts.append(coll.prompt_ids[i] + prefix)
        budgets.append(max(1, min(cfg.max_tokens, left + cfg.slack)))
        prefixes.append(prefix)
        todo.append(k)

    def finished(j: int, out: RequestOutput) -> None:
        k, i = todo[j], int(coll.item[rows[todo[j]]])
        text = answer_text(tokenizer, prefixes[j] + out.token_ids)
        ok = is_correct(text, coll.answers[i], coll.verifiers[i])
        keep(k, Outcome(ok, out.stats.slm_tokens, out.stats.llm_tokens,
                        out.finish_reason == "length"))  # fmt: skip

    if prompts:
        routed_generate(slm, llm, tokenizer, router, threshold, prompts, budgets,
                        window=cfg.window, concurrency=cfg.concurrency, desc=desc,
                        on_finish=finished)  # fmt: skip
    outs = [got[k] for k in range(len(rows))]
    slm_tok = sum(o.slm_tokens for o in outs)
    llm_tok = sum(o.llm_tokens for o in outs)
    stats = {
        "decoded": sum(o.decoded for o in outs),
        "reused": reused,
        "tokens": slm_tok + llm_tok,
        "llm_share": llm_tok / max(1, slm_tok + llm_tok),
        "truncated": sum(o.truncated for o in outs),
    }
    return [o.ok for o in outs], stats


def compared_outcomes(
    coll: Collection,
    rows: Sequence[int],
    slm: Any,
    llm: Any,
    tokenizer: Any,
    router: Any,
    threshold: float,
    cfg: RolloutConfig,
    *,
    desc: str = "rollouts",
    log: OutcomeLog | None = None,
) -> tuple[list[bool], list[bool | None], dict[str, float]]:
    """Both actions judged: the SLM's token forced, then the LLM's where that fails.

    Returns (slm_ok, llm_ok, stats); llm_ok is None where the SLM's token already gave a
    right answer (the LLM's is then not needed, whatever it would give).
    """
    slm_ok, s1 = rollout_outcomes(coll, rows, slm, llm, tokenizer, router, threshold, cfg,
                                  desc=f"{desc} (SLM token)", log=log)  # fmt: skip
    failed = [k for k, ok in enumerate(slm_ok) if not ok]
    llm_ok: list[bool | None] = [None] * len(rows)
    s2: dict[str, float] = {"decoded": 0, "reused": 0, "tokens": 0, "llm_share": 0.0,
                            "truncated": 0}  # fmt: skip
    if failed:
        got, s2 = rollout_outcomes(coll, [rows[k] for k in failed], slm, llm, tokenizer,
                                   router, threshold, cfg, desc=f"{desc} (LLM token)",
                                   force="llm", log=log)  # fmt: skip
        for k, ok in zip(failed, got, strict=True):
            llm_ok[k] = ok
    tokens = s1["tokens"] + s2["tokens"]
    stats = {
        "decoded": s1["decoded"] + s2["decoded"],
        "reused": s1["reused"] + s2["reused"],
        "tokens": tokens,
        "llm_share": (s1["llm_share"] * s1["tokens"] + s2["llm_share"] * s2["tokens"])
        / max(1, tokens),
        "truncated": s1["truncated"] + s2["truncated"],
        "llm_forced": len(failed),
        "llm_rescued": sum(ok is True for ok in llm_ok),
    }
    return slm_ok, llm_ok, stats


def decode_accuracy(
    engines: tuple[Any, Any, Any],
    items: Sequence[Item],
    router: Any,
    threshold: float,
    rc: RolloutConfig,
) -> dict[str, float]:
    """Routed greedy decode of whole answers: accuracy and LLM token share."""
    ok, share = decode_correct(engines, items, router, threshold, rc)
    return {"accuracy": round(sum(ok) / len(ok), 4), "llm_share": round(share, 4)}


def decode_correct(
    engines: tuple[Any, Any, Any],
    items: Sequence[Item],
    router: Any,
    threshold: float,
    rc: RolloutConfig,
    desc: str = "validation decode",
) -> tuple[list[bool], float]:
    """Routed greedy decode of whole answers: the verdict per item and the LLM token share."""
    slm, llm, tok = engines
    prompts = [encode(tok, it)[0] for it in items]
    budgets = [ANSWER_MAX_TOKENS] * len(items)
    outs, _ = routed_generate(
        slm,
        llm,
        tok,
        router,
        threshold,
        prompts,
        budgets,
        window=rc.window,
        concurrency=rc.concurrency,
        desc=desc,
    )
    ok = [
        is_correct(answer_text(tok, o.token_ids), it.answer, it.verifier)
        for o, it in zip(outs, items, strict=True)
    ]
    n_llm = sum(o.stats.llm_tokens for o in outs)
    n_all = n_llm + sum(o.stats.slm_tokens for o in outs)
    return ok, n_llm / max(1, n_all)


def reference_accuracy(
    engines: tuple[Any, Any, Any], items: Sequence[Item], rc: RolloutConfig
) -> dict[str, float]:
    """Accuracy of the SLM alone and the LLM alone, through the same scheduler."""
    return {
        "slm_only": decode_accuracy(engines, items, AlwaysSLM(), 0.5, rc)["accuracy"],
        "llm_only": decode_accuracy(engines, items, AlwaysLLM(), 0.5, rc)["accuracy"],
    }
