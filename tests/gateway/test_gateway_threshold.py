"""CITER_THRESHOLD is the default of every `citer` request that names none."""

from __future__ import annotations

import httpx
from live_gateway import GatewayProcess


def served_threshold(gw: GatewayProcess) -> float:
    _, key = gw.new_tenant()
    models = httpx.get(f"{gw.url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                       timeout=10).json()["data"]  # fmt: skip
    return next(m for m in models if m["id"] == "citer")["citer"]["routing"]["default_threshold"]


def llm_share(gw: GatewayProcess) -> float:
    """LLM token share of one greedy answer; the response names the threshold used."""
    key = gw.new_tenant()[1]
    body = {"model": "citer", "prompt": "12+30=", "max_tokens": 24, "temperature": 0}
    r = httpx.post(f"{gw.url}/v1/completions", headers={"Authorization": f"Bearer {key}"},
                   json=body, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["routing"]["threshold"] == served_threshold(gw)
    return r.json()["usage"]["llm_token_share"]


def test_the_threshold_setting_moves_the_llm_share(gateway, gateway_models, tmp_path) -> None:
    base = llm_share(gateway)
    low = GatewayProcess(*gateway_models, tmp_path / "gw.log", CITER_THRESHOLD="-1000")
    try:
        assert served_threshold(low) == -1000.0
        assert llm_share(low) == 1.0 > base  # every router score exceeds it
    finally:
        low.stop()
