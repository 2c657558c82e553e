"""A few seconds of ``make soak`` against the live gateway: streams abandoned at random
leave no request running, no KV cache, no reservation, and budgets match what was seen."""

from __future__ import annotations

from live_gateway import ADMIN_KEY

from loadtests.soak import SoakConfig, soak


async def test_short_soak_with_disconnects_leaves_nothing_behind(gateway) -> None:
    cfg = SoakConfig(
        duration_s=4, warmup_s=2, clients=4, tenants=2, disconnect=0.5, hostile=0.2,
        max_tokens=32, prompts=8,
    )  # fmt: skip
    rep = await soak(gateway.url, ADMIN_KEY, cfg)
    assert [c for c in rep["checks"] if not c["ok"]] == []
    assert rep["ok"] and len(rep["checks"]) == 6 + 7 * cfg.tenants
    ledgers = rep["ledgers"].values()
    assert sum(led["abandoned"] for led in ledgers) >= 1  # clients did disconnect mid-stream
    assert sum(led["hostile"] for led in ledgers) >= 1  # and sent hostile bodies
    assert sum(led["seen"] for led in ledgers) >= cfg.prompts  # the probe, at least
    aborted = sum(u["requests"]["aborted"] for u in rep["after"]["usage"].values())
    assert aborted >= 1  # and the gateway settled them as aborted
    assert rep["after"]["rss_bytes"] > 0
