"""The chart sets exactly the variables the gateway reads, and they parse.

Names come from the settings classes themselves (``GatewaySettings``,
``TenancySettings``), so a renamed or added setting fails here until the chart
and values.yaml follow.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from gateway.tenancy import Prices, TenancySettings
from tests.deploy.conftest import CHART, ci_values, gateway_env

# Settings the chart derives instead of taking from `settings:` / `tenancy:`.
WIRED = {
    "host": None,  # always 0.0.0.0 in a pod
    "port": "service.port",
    "admin_key": "adminKey.value",
    "metrics_key": "metricsKey.value",
    "redis_url": "redis.url",  # the chart sets CITER_TENANCY_STORE_URL, its long form
    "store_url": "redis.url",
    "otel_endpoint": "otel.endpoint",
    "otel_service_name": "otel.serviceName",
    "otel_protocol": "otel.protocol",
    "llm_url": "llmPool.externalUrl",  # or the in-chart pool's Service
    "llm_model": "llmPool.servedModelName",
    "llm_api_key": "llmPool.apiKey.existingSecret",
}


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Environment variable -> field, as pydantic-settings resolves them."""
    prefix = cls.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({a.upper(): field for a in alias.choices if isinstance(a, str)})
        elif isinstance(alias, str):
            names[alias.upper()] = field
        else:
            names[f"{prefix}{field}".upper()] = field
    return names


SETTINGS_ENV = env_names(GatewaySettings) | env_names(TenancySettings)


def camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(p.upper() if len(p) == 1 else p.capitalize() for p in rest)


def lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"values.yaml has no {path}"
        node = node[part]
    return node


def test_every_setting_has_a_value_in_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for cls, section in ((GatewaySettings, "settings"), (TenancySettings, "tenancy")):
        for field in cls.model_fields:
            path = WIRED.get(field, f"{section}.{camel(field)}")
            if path is not None:
                lookup(values, path)  # present; null means "the gateway's default"
    # ... and nothing in those sections that the gateway would not read.
    known = {camel(f) for f in GatewaySettings.model_fields}
    assert set(values["settings"]) <= known, set(values["settings"]) - known
    assert set(values["tenancy"]) <= {camel(f) for f in TenancySettings.model_fields}


@pytest.mark.parametrize("case", ["default", "cpu-demo", "full"])
def test_deployment_env_names_match_the_settings_classes(render, case: str) -> None:
    values = {} if case == "default" else ci_values(case)
    extra = {e["name"] for e in values.get("extraEnv", [])}
    env = gateway_env(render(values))
    unknown = set(env) - set(SETTINGS_ENV) - extra
    assert not unknown, f"the gateway reads no such variable: {sorted(unknown)}"
    for name in extra:
        assert not name.startswith("CITER_"), name  # citer settings go through values


def settings_from(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    for name in list(os.environ):
        if name.startswith(("CITER_", "OTEL_")) or name == "REDIS_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        # A secretKeyRef resolves at run time in the pod; stand in a value of the right shape.
        # (long enough to pass the weak-key check on the pod's 0.0.0.0 bind).
        secret = f"from-secret:{name}".ljust(40, "x")
        monkeypatch.setenv(name, value if isinstance(value, str) else secret)
    return GatewaySettings()


def test_full_values_reach_the_gateway_parsed(render, monkeypatch: pytest.MonkeyPatch) -> None:
    values = ci_values("full")
    env = gateway_env(render(values))
    s = settings_from(env, monkeypatch)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["settings"]
    assert (s.host, s.port) == ("0.0.0.0", 8000)
    assert s.policy == "citer" and s.threshold == 0.35 and s.max_prompt_tokens == 2048
    assert s.max_body_bytes == defaults["maxBodyBytes"] == 1_048_576  # not 1.048576e+06
    assert s.bootstrap_prices == Prices(**defaults["bootstrapPrices"])
    assert s.default_prices == Prices(**defaults["defaultPrices"])
    assert (s.device, s.dtype, s.window) == ("cuda", "bfloat16", defaults["window"])
    assert s.bootstrap_tenant == "acme"
    assert s.admin_key is not None and s.metrics_key is not None
    assert s.otel_endpoint == values["otel"]["endpoint"]
    assert s.llm_url == "http://citer-llm:8000/v1" and s.llm_model == "llm"  # the LLM pool
    assert (s.llm_deadline_s, s.llm_backoff_s) == (defaults["llmDeadlineS"], 0.05)
    remote = s.remote_llm()
    assert remote is not None and remote.base_url == s.llm_url
    t = s.tenancy()
    assert t.store_url == "redis://citer-redis:6379/0"
    assert (t.namespace, t.reservation_ttl_s) == ("citer", 600.0)


def test_default_values_parse_and_leave_nulls_unset(render, monkeypatch) -> None:
    env = gateway_env(render())
    s = settings_from(env, monkeypatch)
    assert "CITER_POLICY" not in env and s.policy is None  # citer iff the card exists
    assert "CITER_THRESHOLD" not in env and s.threshold is None
    assert "CITER_ADMIN_KEY" not in env and s.admin_key is None  # admin API off
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env and s.otel_endpoint is None
    assert "CITER_LLM_URL" not in env and s.remote_llm() is None  # the LLM runs in-process
    assert s.tenancy().store_url is None  # embedded store, one replica


def test_cpu_demo_values_point_at_the_models_baked_into_the_cpu_image(render, monkeypatch):
    from tests.deploy.dockerfile import stage_env

    baked = stage_env("cpu")
    s = settings_from(gateway_env(render(ci_values("cpu-demo"))), monkeypatch)
    assert (s.slm, s.llm, s.router_card) == (
        baked["CITER_SLM"],
        baked["CITER_LLM"],
        baked["CITER_ROUTER_CARD"],
    )
    assert (s.device, s.dtype) == ("cpu", "float32")


def test_the_chart_offers_exactly_the_registered_routers() -> None:
    """values.schema.json cannot import the registry: this keeps its enum in step."""
    import json

    from router_models.registry import router_names

    schema = json.loads((CHART / "values.schema.json").read_text())
    offered = schema["properties"]["settings"]["properties"]["policy"]["enum"]
    assert sorted(p for p in offered if p is not None) == router_names() and None in offered
