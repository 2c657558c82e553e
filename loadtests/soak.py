"""``make soak``: steady streaming load with random client disconnects, then checks.

    python -m loadtests.soak [--duration 180] [--warmup 20] [--clients 8] [--tenants 3]
                             [--disconnect 0.3] [--hostile 0.1] [--max-tokens 64]
                             [--rss-margin-mb 64] [--seed 0] [--out build/soak]

Phases, against a local gateway it starts (loadtests/server.py):
  probe    each prompt of the pool once, 1 token, to learn its prompt tokens
  warm-up  the load below for --warmup s, wait until idle -> "before" snapshot
           (allocator pools and caches reach their working size first)
  load     --clients streaming clients for --duration s on --tenants tenants,
           policies from common.policy_mix; each stream is abandoned with
           probability --disconnect after a random number (0..max_tokens/2) of
           content chunks, by closing the connection mid-stream; with probability
           --hostile a request is a hostile body (loadtests/hostile.py) instead,
           which must get 400 and reserve nothing
  after    wait until idle -> "after" snapshot -> soak_check.evaluate
Prints a before/after table and the checks; writes ``soak.json`` under --out.
Exit code 1 when a check fails. Loopback traffic only; bounded by --duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from loadtests.common import Policy, chat_body, content_of, policy_mix, prompts, sse_data
from loadtests.hostile import REFUSED
from loadtests.soak_check import Ledger, Snapshot, evaluate, report, table

# Prices large enough that one request costs many micro-units (cost units per 1k tokens).
SOAK_PRICES = {"slm_prompt": 1.0, "slm_completion": 2.0, "llm_prompt": 10.0, "llm_completion": 20.0}
IDLE_TIMEOUT_S = 30.0  # aborted streams settle within a step; this is generous


@dataclass(frozen=True)
class SoakConfig:
    duration_s: float = 180.0
    warmup_s: float = 20.0
    clients: int = 8
    tenants: int = 3
    disconnect: float = 0.3  # probability that a client abandons a stream
    hostile: float = 0.1  # probability that a request is one of loadtests.hostile's bodies
    max_tokens: int = 64
    prompts: int = 64  # test-split items in the pool
    rss_margin_mb: float = 64.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("disconnect", "hostile"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be within [0, 1], got {getattr(self, name)}")
        if min(self.duration_s, self.warmup_s, self.rss_margin_mb) < 0:
            raise ValueError("duration, warm-up and RSS margin must be >= 0")
        for name in ("clients", "tenants", "max_tokens", "prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class SoakTenant:
    id: str
    key: str


class Load:
    """The clients' shared view: prompt pool, policies, per-tenant ledgers."""

    def __init__(self, cfg: SoakConfig, tenants: list[SoakTenant], policies: list[Policy]) -> None:
        from gateway.tenancy import Prices

        self.cfg, self.tenants, self.policies = cfg, tenants, policies
        self.prices = Prices(**SOAK_PRICES)
        self.pool = prompts(cfg.prompts)
        self.prompt_tokens: list[int] = [0] * len(self.pool)
        self.ledgers = {t.id: Ledger() for t in tenants}

    def worst_case(self, i: int) -> float:
        from gateway.tenancy import worst_case_cost

        return worst_case_cost(self.prices, self.prompt_tokens[i], self.cfg.max_tokens, True)

    def floor(self, i: int, chunks: int) -> float:
        """Least an abandoned stream cost: each content chunk holds >= 1 billed token,
        and a model that wrote one had prefilled the prompt."""
        if not chunks:
            return 0.0
        p = self.prices
        prompt = self.prompt_tokens[i] * min(p.slm_prompt, p.llm_prompt)
        return (prompt + chunks * min(p.slm_completion, p.llm_completion)) / 1000

    async def probe(self, client: httpx.AsyncClient) -> None:
        """Prompt tokens of every pooled prompt (1-token SLM answers, billed like any)."""
        tenant = self.tenants[0]
        for i, messages in enumerate(self.pool):
            body = {"model": "slm", "messages": messages, "max_tokens": 1}
            r = await client.post("/v1/chat/completions", json=body, headers=_auth(tenant))
            r.raise_for_status()
            usage = r.json()["usage"]
            self.prompt_tokens[i] = usage["prompt_tokens"]
            self.ledgers[tenant.id].granted += 1
            self.ledgers[tenant.id].answered(usage["cost"])

    async def one(self, client: httpx.AsyncClient, tenant: SoakTenant, rng: random.Random) -> None:
        if rng.random() < self.cfg.hostile:
            await self.hostile(client, tenant, rng)
            return
        i = rng.randrange(len(self.pool))
        body = chat_body(rng.choice(self.policies), self.pool[i], self.cfg.max_tokens)
        cut = (
            rng.randint(0, self.cfg.max_tokens // 2) if rng.random() < self.cfg.disconnect else None
        )
        led = self.ledgers[tenant.id]
        chunks, usage = 0, None
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=_auth(tenant)
        ) as r:
            if r.status_code != 200:
                led.refused += 1
                return
            led.granted += 1
            async for line in r.aiter_lines():
                chunk = sse_data(line)
                if chunk is None:
                    continue
                if "error" in chunk:  # the engine failed or the server is shutting down
                    led.errors += 1
                    break
                usage = chunk.get("usage") or usage
                chunks += bool(content_of(chunk))
                if usage is None and cut is not None and chunks >= cut:
                    break  # leaving the block closes the connection mid-stream
        if usage is not None:
            led.answered(usage["cost"])
        else:
            led.abandoned += 1
            led.abandoned_chunks += chunks
            led.abandoned_floor += self.floor(i, chunks)
            led.abandoned_worst += self.worst_case(i)

    async def hostile(
        self, client: httpx.AsyncClient, tenant: SoakTenant, rng: random.Random
    ) -> None:
        """One hostile body; it must be refused with 400 and reserve nothing."""
        path, raw, _ = rng.choice(REFUSED)
        headers = {**_auth(tenant), "Content-Type": "application/json"}
        r = await client.post(path, content=raw.encode("utf-8", "surrogatepass"), headers=headers)
        led = self.ledgers[tenant.id]
        led.hostile += 1
        led.hostile_not_400 += r.status_code != 400

    async def run(self, url: str, seconds: float, seed: int) -> int:
        """Every client loops until the deadline; returns the requests sent."""
        deadline, sent = time.monotonic() + seconds, 0

        async def client_loop(k: int) -> None:
            nonlocal sent
            rng = random.Random(seed * 1000 + k)
            tenant = self.tenants[k % len(self.tenants)]
            async with _client(url) as client:
                while time.monotonic() < deadline:
                    await self.one(client, tenant, rng)
                    sent += 1

        await asyncio.gather(*(client_loop(k) for k in range(self.cfg.clients)))
        return sent


def _auth(tenant: SoakTenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.key}"}


def _client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=4))


async def snapshot(url: str, admin_key: str, tenant_ids: list[str]) -> Snapshot:
    from prometheus_client.parser import text_string_to_metric_families

    admin = {"Authorization": f"Bearer {admin_key}"}
    async with _client(url) as c:
        text = (await c.get("/metrics", headers=admin)).text  # per-tenant spend
        usage = {
            t: (await c.get(f"/admin/tenants/{t}/usage", headers=admin)).json() for t in tenant_ids
        }
    values: dict[str, float] = {}
    spend: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "citer:budget_spend_total":
                spend[s.labels["tenant"]] = s.value
            elif s.name == "citer:kv_cache_sequences":
                values[f"kv_{s.labels['model']}"] = s.value
            else:
                values[s.name] = values.get(s.name, 0.0) + s.value  # sums label sets
    return Snapshot(
        running=values["vllm:num_requests_running"],
        waiting=values["vllm:num_requests_waiting"],
        in_flight=values["citer:requests_in_flight"],
        kv_slm=values["kv_slm"],
        kv_llm=values["kv_llm"],
        rss_bytes=values["process_resident_memory_bytes"],
        aborted=values.get("citer:requests_aborted_total", 0.0),
        spend_metric=spend,
        usage=usage,
    )


async def wait_idle(url: str, admin_key: str, tenant_ids: list[str]) -> Snapshot:
    """The first snapshot with nothing in flight (or the last one after IDLE_TIMEOUT_S)."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    while True:
        snap = await snapshot(url, admin_key, tenant_ids)
        if (snap.in_flight == 0 and snap.running == 0) or time.monotonic() > deadline:
            return snap
        await asyncio.sleep(0.1)


async def soak(url: str, admin_key: str, cfg: SoakConfig) -> dict[str, Any]:
    """Tenants -> probe -> warm-up -> before -> load -> after -> checks (the report dict)."""
    from loadtests.tenants import create_tenant

    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as admin:
        made = [
            create_tenant(admin, "soak", 1e9, SOAK_PRICES, "degrade") for _ in range(cfg.tenants)
        ]
        models = admin.get("/v1/models").json()["data"]
    tenants = [SoakTenant(t["id"], t["key"]) for t in made]
    ids = [t.id for t in tenants]
    load = Load(cfg, tenants, policy_mix(models))
    async with _client(url) as client:
        await load.probe(client)
    warm = await load.run(url, cfg.warmup_s, cfg.seed)
    before = await wait_idle(url, admin_key, ids)
    sent = await load.run(url, cfg.duration_s, cfg.seed + 1)
    after = await wait_idle(url, admin_key, ids)
    checks = evaluate(before, after, load.ledgers, SOAK_PRICES, cfg.rss_margin_mb)
    settings = {**asdict(cfg), "warmup_requests": warm, "load_requests": sent}
    return report(before, after, load.ledgers, checks, settings)


def print_report(rep: dict[str, Any]) -> None:
    print(table(Snapshot(**rep["before"]), Snapshot(**rep["after"])))
    print()
    for c in rep["checks"]:
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
    s = rep["settings"]
    print(
        f"\n{s['load_requests']} requests in {s['duration_s']:g} s "
        f"(+{s['warmup_requests']} warm-up); {'PASSED' if rep['ok'] else 'FAILED'}"
    )


def main() -> None:
    from loadtests.server import local_gateway

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = SoakConfig()
    ap.add_argument("--duration", type=float, default=d.duration_s, help="load seconds")
    ap.add_argument("--warmup", type=float, default=d.warmup_s, help="warm-up seconds")
    ap.add_argument("--clients", type=int, default=d.clients, help="concurrent streaming clients")
    ap.add_argument("--tenants", type=int, default=d.tenants)
    ap.add_argument("--disconnect", type=float, default=d.disconnect, help="P(abandon a stream)")
    ap.add_argument("--hostile", type=float, default=d.hostile, help="P(a hostile body)")
    ap.add_argument("--max-tokens", type=int, default=d.max_tokens)
    ap.add_argument("--rss-margin-mb", type=float, default=d.rss_margin_mb)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--out", type=Path, default=Path("build/soak"))
    a = ap.parse_args()
    try:
        cfg = SoakConfig(
            duration_s=a.duration,
            warmup_s=a.warmup,
            clients=a.clients,
            tenants=a.tenants,
            disconnect=a.disconnect,
            hostile=a.hostile,
            max_tokens=a.max_tokens,
            rss_margin_mb=a.rss_margin_mb,
            seed=a.seed,
        )
    except ValueError as e:
        ap.error(str(e))
    a.out.mkdir(parents=True, exist_ok=True)
    with local_gateway(a.out / "gateway.log") as gw:
        rep = asyncio.run(soak(gw.url, gw.admin_key, cfg))
    (a.out / "soak.json").write_text(json.dumps(rep, indent=1) + "\n")
    print_report(rep)
    print(f"report: {a.out / 'soak.json'}")
    sys.exit(0 if rep["ok"] else 1)


if __name__ == "__main__":
    main()
