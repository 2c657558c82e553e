"""``citer bench``: the collaborative-decoding core benchmark.

One run, one pair of engines, every configuration side by side: policies {slm-only,
llm-only, routed at several thresholds} x concurrency {1, 4, 16, 64} x run-ahead
window {1, 4, 8} x deferred LLM batching {off, 4 steps} (routed runs only: it changes
nothing for one model alone). A concurrency c runs max(items, c) test items, all
submitted at once, c decoding together. The scheduler is driven step by step here so
each request's first-token time and inter-token latency are taken from the moment
its tokens are committed. Per configuration it reports tokens/s, median inter-token
latency (ms), LLM token share r, the router's share of step time, and for routed
runs the cost-model bound on the speed-up over LLM-only, ``1 / (r + (1 - r) * t_slm
/ t_llm)``, where t_slm and t_llm are the per-token times of the SLM-only and
LLM-only runs at the same concurrency and window in this same run. ``--engine
hf,vllm`` runs every configuration on each engine in turn (the vLLM one needs
.venv-vllm), each with its own baselines; ``hf-padded`` is the hf engine with ragged
forwards off, for an A/B in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from citer.bench_rows import Row, table

# policy:threshold, or policy@share for a calibrated router card (the CITER card) run at the
# threshold whose validation LLM share is closest to that share
ROUTED = ("citer@0.1", "citer@0.2", "citer@0.3", "confidence:0.4", "entropy:0.3")
ENGINES = ("hf", "hf-padded", "vllm")  # hf-padded: uneven batches padded (ragged off)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="core decoding benchmark: policies x concurrency x window")
    p.add_argument("--slm", default="models/demo/slm")
    p.add_argument("--llm", default="models/demo/llm")
    p.add_argument("--router-card", default=None, help="the citer policy's card (default: demo)")
    p.add_argument("--items", type=int, default=32, help="test items per configuration")
    p.add_argument(
        "--data",
        default=None,
        help="a task JSONL (GSM8K, CommonsenseQA or citer items: tasks.public) to take the "
        "first items from, instead of the demo pair's test split",
    )
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument(
        "--window",
        default="1,4,8",
        help="run-ahead windows: 8 = the shipped rule (adaptive while <= "
        "SchedulerConfig.adaptive_max_batch sequences decode, default 0: fixed), "
        "8a = adaptive per sequence at every batch size, 8f = fixed at every batch size",
    )
    p.add_argument("--defer", default="0,4", help="defer_steps values for routed runs")
    p.add_argument("--defer-fill", type=float, default=0.5)
    p.add_argument("--verify", default="1", help="routed runs with verify on (1) / off (0)")
    p.add_argument(
        "--routed",
        default=",".join(ROUTED),
        help="comma list of policy:threshold, policy@share (calibrated cards) or "
        "speculative (the SLM drafts, the LLM verifies every position)",
    )
    p.add_argument(
        "--speculative-max-batch",
        default=None,
        help="speculative runs draft while at most this many sequences decode "
        "(default: SchedulerConfig's); auto: timed per engine and window as the gateway's "
        "CITER_SPECULATIVE_MAX_BATCH=auto does, up to the largest --concurrency",
    )
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--out", default="benchmarks/core.json")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--engine", default="hf", help="comma list of hf, hf-padded, vllm (side by side)"
    )
    p.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16")
    p.add_argument(
        "--quant",
        default="none",
        choices=["none", "int8"],
        help="hf: weight-only int8 linears in both models (cpu, bfloat16)",
    )
    p.add_argument(
        "--compile",
        default="none",
        choices=["none", "slm", "llm", "both"],
        help="hf: torch.compile these models' decoder stacks at load (engines.compiled)",
    )
    p.set_defaults(func=run)


Routed = tuple[str, float | None, float | None]  # (policy, threshold, target LLM share)


def parse_routed(spec: str) -> list[Routed]:
    """``confidence:0.4,citer@0.2`` -> [(confidence, 0.4, None), (citer, None, 0.2)];
    ``speculative`` (the gateway's model of that name) -> (speculative, None, None)."""
    out: list[Routed] = []
    for part in filter(None, spec.split(",")):
        if part == "speculative":
            out.append((part, None, None))
            continue
        policy, sep, value = part.partition("@" if "@" in part else ":")
        try:
            x = float(value)
        except ValueError:
            x = None
        if not sep or not policy or x is None:
            raise ValueError(f"--routed {part!r}: expected policy:threshold or policy@share")
        out.append((policy, x, None) if sep == ":" else (policy, None, x))
    return out


def _label(policy: str, share: float | None) -> str:
    return f"{policy}@{share:g}" if share is not None else policy


def parse_windows(spec: str) -> list[tuple[int, str]]:
    """``1,4,4a,4f`` -> [(1, ""), (4, ""), (4, "a"), (4, "f")]: k alone runs the shipped
    rule (adaptive run-ahead while <= SchedulerConfig.adaptive_max_batch sequences
    decode), ``a`` adaptive at every batch size, ``f`` a fixed window at every one."""
    out = []
    for part in filter(None, spec.split(",")):
        k = part.rstrip("af")
        if not k.isdigit() or int(k) < 1 or len(part) - len(k) > 1:
            raise ValueError(
                f"--window {part!r}: expected an integer >= 1, optionally + 'a' or 'f'"
            )
        out.append((int(k), part[len(k) :]))
    return out


def adaptive_max_batch(window: tuple[int, str], conc: int) -> int:
    """The scheduler's adaptive_max_batch for a ``--window`` entry at concurrency conc."""
    from engines.scheduler_config import SchedulerConfig

    return {"a": conc, "f": 0}.get(window[1], SchedulerConfig().adaptive_max_batch)


def spec_limit(pair, arg: str | None, window: int, conc: int) -> dict:  # noqa: ANN001
    """SchedulerConfig kwargs for --speculative-max-batch: none (the scheduler's own), a
    number, or ``auto``: timed on the pair, then following the drafts the LLM keeps."""
    if arg != "auto":
        return {} if arg is None else {"speculative_max_batch": int(arg)}
    from engines.spec_probe import probe

    got = probe(pair.slm, pair.llm, window, conc)
    print(f"speculative probe, window {window}: drafts up to {got.max_batch} ({got.reason})")
    return {"speculative_max_batch": got.max_batch, "speculative_costs": got.rows}


def _run_one(pair, routed: Routed, conc: int, window: tuple[int, str], items, max_tokens,
             defer=(0, 0.5), verify: bool = True, card: str | None = None,
             spec_kw: dict | None = None):  # fmt: skip
    from engines.scheduler import Scheduler, SchedulerConfig
    from engines.types import Request, RoutingParams, SamplingParams
    from router_models.registry import make_router
    from tasks.chat import chat_ids
    from tasks.verify import is_correct

    policy, thr, share = routed
    spec = policy == "speculative"  # every position verified: no router score is read
    router, thr = make_router(pair, "slm" if spec else policy, thr, target_share=share,
                              card=card if policy == "citer" else None)  # fmt: skip
    routing = RoutingParams(speculative=True) if spec else RoutingParams(thr)
    adapt = adaptive_max_batch(window, conc)
    sched = Scheduler(pair.slm, pair.llm, router, pair.tokenizer,
                      SchedulerConfig(window=window[0], max_batch=conc, seed=0,
                                      defer_steps=defer[0], defer_fill=defer[1],
                                      adaptive_max_batch=adapt, verify=verify,
                                      **(spec_kw or {})))  # fmt: skip
    sp = SamplingParams(max_tokens=max_tokens, seed=0)
    prompts = [chat_ids(pair.tokenizer, it.messages) for it in items]
    # every run starts on warm caches, as a server's do (CITER_KV_RESERVE_TOKENS)
    pair.reserve_kv(min(conc, len(items)), max(map(len, prompts)) + max_tokens + window[0] + 1)
    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        sched.add_request(Request(str(i), p, sp, routing))
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    count: dict[str, int] = {}
    text: dict[str, list[str]] = {}
    slm_tok = llm_tok = agreed = 0
    while sched.has_work():
        events = sched.step()
        now = time.perf_counter()
        for ev in events:
            rid = ev.request_id
            text.setdefault(rid, []).append(ev.text)
            if ev.token_id is not None:
                first.setdefault(rid, now)
                last[rid] = now
                count[rid] = count.get(rid, 0) + 1
            if ev.finish_reason and ev.stats:
                slm_tok += ev.stats.slm_tokens
                llm_tok += ev.stats.llm_tokens
                agreed += ev.stats.llm_agreed_tokens
    wall = time.perf_counter() - t0
    tot = sched.totals
    step_s = tot.slm_s + tot.router_s + tot.llm_s + tot.sched_s
    itl = [(last[r] - first[r]) / (count[r] - 1) for r in count if count[r] > 1]
    ok = [is_correct("".join(text[str(i)]), it.answer, it.verifier) for i, it in enumerate(items)]
    tokens = sum(count.values())
    return Row(
        _label(policy, share), float("-inf") if spec else thr, conc, window[0], len(items),
        tokens, round(wall, 3),
        round(tokens / wall, 1), round(1000 * statistics.median(itl), 2) if itl else None,
        round(1000 * (statistics.median(first.values()) - t0), 1) if first else None,
        round(llm_tok / max(1, slm_tok + llm_tok), 4),
        round(tot.router_s / step_s, 4) if step_s else 0.0,
        round(sum(ok) / len(ok), 4),
        defer_steps=defer[0],
        llm_passes_per_token=round(tot.llm_passes / max(1, tot.committed), 4),
        llm_batch=round(tot.llm_calls / max(1, tot.llm_passes), 2),
        slm_rows_per_token=round(tot.drafted / max(1, tot.committed), 3),
        adaptive=window[0] > 1 and conc <= adapt,
        llm_agreed=round(agreed / llm_tok, 3) if llm_tok else 0.0,
        verify=verify,
        ms_tok=tuple(round(1e3 * x / max(1, tot.committed), 3)
                     for x in (tot.slm_s, tot.router_s, tot.llm_s, tot.sched_s)),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from engines.pair import PairConfig, build_pair
    from router_models.registry import make_router
    from tasks.public import read_items
    from tasks.splits import load_split

    concs = [int(x) for x in args.concurrency.split(",")]
    windows = parse_windows(args.window)
    defers = [int(x) for x in args.defer.split(",")]
    verifies = [x.strip() == "1" for x in args.verify.split(",")]
    routed = parse_routed(args.routed)
    engines = args.engine.split(",")
    if min(concs) < 1 or not windows or args.items < 1:
        raise ValueError("--concurrency, --window and --items must all be >= 1")
    if not engines or any(e not in ENGINES for e in engines):
        raise ValueError(f"--engine {args.engine}: a comma list of {', '.join(ENGINES)}")
    data = read_items(args.data) if args.data else None
    need = max(args.items, *concs)
    if data is not None and len(data) < need:
        raise ValueError(f"--data {args.data}: {len(data)} items; --items and --concurrency "
                         f"need {need}")  # fmt: skip
    import torch

    # One thread: on a 2-core box with anything else running, 2 OpenMP threads
    # spin against each other and small-matrix decode gets ~50x slower.
    torch.set_num_threads(args.threads)
    pairs = {
        e: build_pair(
            PairConfig(
                args.slm,
                args.llm,
                dtype=args.dtype,
                engine=e.split("-")[0],
                ragged=e != "hf-padded",
                slm_quant=args.quant,
                llm_quant=args.quant,
                slm_compile=args.compile in ("slm", "both") and e == "hf",
                llm_compile=args.compile in ("llm", "both") and e == "hf",
            )
        )
        for e in engines
    }
    for pair in pairs.values():  # every policy must run on every engine, before any run
        for policy, thr, share in routed:
            make_router(pair, "slm" if policy == "speculative" else policy, thr,
                        target_share=share,
                        card=args.router_card if policy == "citer" else None)  # fmt: skip
    configs = [(("slm", None, None), 0, True), (("llm", None, None), 0, True)]
    configs += [(r, d, v) for r in routed for d in defers for v in verifies]
    rows: list[Row] = []
    bar = tqdm(total=len(engines) * len(configs) * len(concs) * len(windows), desc="bench")
    for engine, pair in pairs.items():
        limits = {w: spec_limit(pair, args.speculative_max_batch, w[0], max(concs))
                  for w in windows}  # fmt: skip
        for conc in concs:
            n = max(args.items, conc)
            items = data[:n] if data is not None else load_split("test", n)
            for window in windows:
                base: dict[str, Row] = {}
                for cfg, defer, verify in configs:
                    row = _run_one(pair, cfg, conc, window, items, args.max_tokens,
                                   (defer, args.defer_fill), verify, args.router_card,
                                   limits[window])  # fmt: skip
                    row.engine = engine
                    if cfg[0] in ("slm", "llm"):
                        base[cfg[0]] = row
                    else:
                        r = row.llm_share
                        ratio = base["llm"].tokens_per_s / base["slm"].tokens_per_s  # t_slm/t_llm
                        row.bound = round(1 / (r + (1 - r) * ratio), 3)
                        row.speedup = round(row.tokens_per_s / base["llm"].tokens_per_s, 3)
                    rows.append(row)
                    bar.update(1)
    bar.close()
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    out.with_suffix(".md").write_text(table(rows) + "\n")
    return 0
