"""``citer eval``, ``citer bench`` and ``citer serve`` with ``--engine vllm``, run the way
users run them: the console script of this virtualenv, the demo pair, a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway.live_gateway import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
CITER = Path(sys.executable).with_name("citer")


def citer(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CITER), *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, **env},
    )  # fmt: skip


def test_eval_on_vllm_reports_what_hf_reports() -> None:
    args = ["eval", "--policy", "logprob", "--threshold", "0.3", "--limit", "6", "--json",
            "--window", "4", "--concurrency", "3"]  # fmt: skip
    reps = {}
    for engine in ("hf", "vllm"):
        p = citer(*args, "--engine", engine)
        assert p.returncode == 0, p.stderr
        reps[engine] = json.loads(p.stdout)
    hf, vllm = reps["hf"], reps["vllm"]
    assert vllm["engine"] == "vllm" and vllm["n"] == 6
    for key in ("accuracy", "tokens", "llm_token_share", "slm_tokens", "llm_tokens"):
        assert vllm[key] == hf[key], key
    assert 0.0 < vllm["llm_token_share"] < 1.0


@pytest.mark.parametrize("cmd", ["eval", "serve"])
def test_a_card_that_needs_hidden_states_is_refused(tmp_path: Path, cmd: str) -> None:
    from transformers import AutoConfig

    from router_models.base import FEATURE_HIDDEN
    from router_models.card import save_card
    from router_models.citer import CiterConfig, CiterMLP
    from router_models.vocab import tokenizer_hash

    slm = str(ROOT / "models" / "demo" / "slm")
    cfg = AutoConfig.from_pretrained(slm)  # the card must match the shipped SLM
    h = cfg.hidden_size
    save_card(tmp_path, CiterMLP(CiterConfig(h, 8)), slm=slm, llm="llm", hidden_size=h,
              vocab_size=cfg.vocab_size, tokenizer_hash=tokenizer_hash(slm),
              features=(FEATURE_HIDDEN,))  # fmt: skip
    args = {"eval": ["--policy", "citer", "--router", str(tmp_path), "--limit", "1"],
            "serve": ["--port", "0"]}[cmd]  # fmt: skip
    p = citer(cmd, "--engine", "vllm", *args, CITER_ROUTER_CARD=str(tmp_path))
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()[-1]
    assert "needs features ['hidden:final']" in err and "'logprobs:top8'" in err
    assert "--policy logprob" in err  # says what to do


def test_bench_runs_both_engines_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    p = citer("bench", "--engine", "hf,vllm", "--items", "2", "--concurrency", "2",
              "--window", "4", "--routed", "logprob:0.3", "--max-tokens", "24",
              "--out", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = json.loads(out.read_text())
    by = {(r["engine"], r["policy"]): r for r in rows}
    assert set(by) == {(e, p) for e in ("hf", "vllm") for p in ("slm", "llm", "logprob")}
    for policy in ("slm", "llm", "logprob"):  # same tokens, so the same counts and shares
        hf, vllm = by["hf", policy], by["vllm", policy]
        assert (vllm["tokens"], vllm["llm_share"]) == (hf["tokens"], hf["llm_share"])
        assert vllm["tokens_per_s"] > 0 and vllm["itl_ms"] > 0
    assert "| vllm | logprob |" in out.with_suffix(".md").read_text()


def test_serve_on_vllm_answers_like_the_hf_engine(tmp_path: Path, hf, prompts) -> None:
    import openai
    from openai import OpenAI

    from engines.async_engine import generate_batch
    from engines.scheduler import Scheduler
    from engines.types import Request, RoutingParams, SamplingParams
    from router_models.policies import LogprobRouter

    demo = ROOT / "models" / "demo"
    gw = GatewayProcess(demo / "slm", demo / "llm", tmp_path / "gw.log", CITER_ENGINE="vllm",
                        CITER_ROUTER_CARD=str(tmp_path / "none"))  # fmt: skip
    try:
        _, key = gw.new_tenant()
        client = OpenAI(base_url=f"{gw.url}/v1", api_key=key)
        routing = {"routing": {"threshold": 0.3}}
        r = client.completions.create(
            model="citer", prompt=prompts[0], max_tokens=32, temperature=0, extra_body=routing
        )
        models = {m.id: m for m in client.models.list().data}
        with pytest.raises(openai.BadRequestError) as refused:  # vLLM samples unmasked
            client.chat.completions.create(model="citer", messages=[{"role": "user",
                "content": "hi"}], response_format={"type": "json_object"})  # fmt: skip
    finally:
        gw.stop()
    assert refused.value.param == "response_format" and "grammar masks" in str(refused.value)
    assert models["citer"].model_extra["citer"]["routing"]["policy"] == "logprob"  # no card
    sched = Scheduler(hf.slm, hf.llm, LogprobRouter(0.3), hf.tokenizer)
    want = generate_batch(sched, [Request("r", prompts[0], SamplingParams(32), RoutingParams())])
    assert r.choices[0].text == want[0].text and r.usage.completion_tokens == len(want[0].token_ids)
    assert r.usage.model_extra["llm_tokens"] == want[0].stats.llm_tokens > 0
