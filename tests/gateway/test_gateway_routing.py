"""Routing controls and settings, without a server: model names, the routing field,
budget decisions and tenant ceilings -> RoutingParams."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from engines.types import RoutingParams
from gateway.errors import APIError
from gateway.routing import RouterSetup, RoutingBody, plan_route, routing_params
from gateway.settings import GatewaySettings
from router_models.card import CalibrationPoint

NO_CARD = RouterSetup("confidence", object(), 0.5, None, "no card")
CARD = SimpleNamespace(
    calibration=[CalibrationPoint(0.2, 0.6), CalibrationPoint(0.5, 0.3), CalibrationPoint(0.8, 0.1)]
)
WITH_CARD = RouterSetup("citer", object(), 0.5, CARD, "card")


def test_model_names_select_the_policy() -> None:
    assert plan_route("citer", None, NO_CARD).threshold == 0.5  # the gateway's default
    low = RouterSetup("confidence", object(), -2.0, None, "CITER_THRESHOLD=-2")
    assert plan_route("citer", None, low).threshold == -2.0
    slm = plan_route("slm", None, NO_CARD)
    assert slm.mode == "slm" and slm.max_llm_tokens == 0
    llm = plan_route("llm", None, NO_CARD)
    assert llm.mode == "llm" and llm.threshold == -math.inf
    mid = plan_route("citer:0.3", None, WITH_CARD)
    assert mid.target_llm_share == 0.3 and mid.threshold == pytest.approx(0.5)


def test_routing_field_refines_citer() -> None:
    plan = plan_route("citer", RoutingBody(threshold=0.7, max_llm_tokens=3), NO_CARD)
    assert (plan.threshold, plan.max_llm_tokens) == (0.7, 3)
    assert plan_route("citer", RoutingBody(target_llm_share=0.1), WITH_CARD).threshold == 0.8
    assert plan_route("slm", RoutingBody(return_sources=True), NO_CARD).return_sources


@pytest.mark.parametrize(
    ("model", "body", "status", "needle"),
    [
        ("gpt-4o", None, 404, "does not exist"),
        ("slm:0.2", None, 404, "does not exist"),
        ("citer:abc", None, 404, "does not exist"),
        ("citer:1.5", None, 400, "within [0, 1]"),
        ("citer:0.2", None, 400, "calibrated CITER router card"),  # no card: no calibration
        ("citer:0.2", RoutingBody(threshold=0.3), 400, "not both"),
        ("citer", RoutingBody(threshold=0.3, target_llm_share=0.2), 400, "not both"),
        ("llm", RoutingBody(threshold=0.3), 400, "apply to the citer model"),
    ],
)
def test_bad_routing_is_refused(model: str, body: RoutingBody | None, status: int, needle: str):
    with pytest.raises(APIError) as err:
        plan_route(model, body, NO_CARD)
    assert err.value.status == status and needle in err.value.message


def test_budget_and_tenant_ceiling_cap_the_llm() -> None:
    plan = plan_route("citer", RoutingBody(max_llm_tokens=50), NO_CARD)
    assert routing_params(plan, True, None) == RoutingParams(0.5, 50, None)
    # the tenant's share ceiling goes to the scheduler as the exact per-position check
    assert routing_params(plan, True, 0.2) == RoutingParams(0.5, 50, 0.2)
    assert routing_params(plan, False, 0.2) == RoutingParams(0.5, 0, None)  # SLM alone
    llm = plan_route("llm", None, NO_CARD)
    rp = routing_params(llm, llm_allowed=True, max_llm_share=0.25)
    assert (rp.threshold, rp.max_llm_tokens, rp.max_llm_share) == (-math.inf, None, 0.25)


def test_settings_default_to_confidence_until_a_card_exists(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CITER_POLICY", raising=False)
    cfg = GatewaySettings(router_card=str(tmp_path / "router"))
    assert cfg.resolved_policy() == "confidence"
    (tmp_path / "router").mkdir()
    (tmp_path / "router" / "router.json").write_text("{}")
    assert cfg.resolved_policy() == "citer"
    assert (
        GatewaySettings(router_card=str(tmp_path / "router"), policy="entropy").resolved_policy()
        == "entropy"
    )


def test_vllm_engine_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CITER_POLICY", raising=False)
    monkeypatch.setenv("CITER_ENGINE", "vllm")
    cfg = GatewaySettings(router_card=str(tmp_path / "router"))
    assert cfg.engine == "vllm"
    assert cfg.resolved_policy() == "logprob"  # vLLM gives log-probs, not the logits
    with pytest.raises(ValueError, match="a remote LLM pairs with CITER_ENGINE=hf"):
        GatewaySettings(llm_url="http://127.0.0.1:9/v1")
    monkeypatch.setenv("CITER_ENGINE", "tgi")
    with pytest.raises(ValueError, match="engine"):
        GatewaySettings()


def test_settings_read_the_environment_and_name_bad_values(monkeypatch) -> None:
    monkeypatch.setenv("CITER_MAX_BATCH", "3")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    cfg = GatewaySettings()
    assert cfg.max_batch == 3 and cfg.tenancy().store_url == "redis://127.0.0.1:1/0"
    monkeypatch.setenv("CITER_DEFAULT_MAX_TOKENS", "5000")
    with pytest.raises(ValueError, match="CITER_DEFAULT_MAX_TOKENS=5000"):
        GatewaySettings()
    monkeypatch.setenv("CITER_WINDOW", "0")
    with pytest.raises(ValueError, match="window"):
        GatewaySettings()
