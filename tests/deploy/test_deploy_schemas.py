"""Rendered objects against Kubernetes' own JSON schemas; values against values.schema.json.

Schemas come from ``kubernetes-validate`` (offline copies of the API's OpenAPI schemas,
strict: unknown fields are errors). ServiceMonitor is a Prometheus Operator CRD with no
schema there; its shape is checked by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.conftest import CHART, RELEASE, ci_values

# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion: >=1.25) and the newest.
OLDEST = "1.25"
CASES = {
    "default": {},
    "cpu-demo": ci_values("cpu-demo"),
    "full": ci_values("full"),
    "admin+external-redis": {
        "adminKey": {"value": "sk-admin"},
        "redis": {"url": "redis://redis:6379/0"},
        "replicaCount": 2,
        "otel": {"endpoint": "http://collector:4318"},
        "llmPool": {"externalUrl": "http://llm:8000/v1"},
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_objects_match_the_kubernetes_schemas(render, case: str) -> None:
    import kubernetes_validate as kv
    from packaging.version import Version

    known = kv.utils.all_versions()
    versions = {min((v for v in known if Version(v) >= Version(OLDEST)), key=Version), known[-1]}
    objs = render(CASES[case])
    assert objs
    for obj in objs:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            check_service_monitor(obj)
            continue
        for version in sorted(versions):
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as e:
                where = "/".join(map(str, e.path))
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} @ {version}: {where}: {e}")


def check_service_monitor(obj: dict[str, Any]) -> None:
    assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "ServiceMonitor"
    spec = obj["spec"]
    assert spec["selector"]["matchLabels"]
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "authorization"}
        assert ep["interval"].endswith("s") and ep["scrapeTimeout"].endswith("s")
        if "authorization" in ep:  # the operator's SafeAuthorization: a Secret key reference
            auth = ep["authorization"]
            assert auth["type"] == "Bearer" and set(auth["credentials"]) == {"name", "key"}


def test_helm_lint_is_clean() -> None:
    import helm_python as helm

    for values in CASES.values():
        report = helm.lint(str(CHART), values, strict=True, kube_version="v1.30.0")
        assert not report["errors"], report
        # severity 2 = warning, 3 = error; info ("icon is recommended") is fine.
        assert not [m for m in report["messages"] if m["severity"] >= 2], report


@pytest.mark.parametrize(
    "values, where",
    [
        ({"settings": {"window": 0}}, "/settings/window"),
        ({"settings": {"dtype": "float64"}}, "/settings/dtype"),
        ({"settings": {"policy": "smart"}}, "/settings/policy"),
        ({"settings": {"maxBatch": "16"}}, "/settings/maxBatch"),
        ({"settings": {"maxBatchSize": 16}}, "maxBatchSize"),  # a typo is not silently ignored
        ({"tenancy": {"reservationTtlS": 0}}, "/tenancy/reservationTtlS"),
        ({"redis": {"url": "localhost:6379"}}, "/redis/url"),
        ({"service": {"port": 70000}}, "/service/port"),
        ({"extraEnv": [{"name": "CITER_WINDOW", "value": "8"}]}, "/extraEnv/0/name"),
        ({"replicas": 3}, "replicas"),
        ({"ingress": {"hosts": [{"host": "a.example", "path": "v1"}]}}, "/ingress/hosts/0/path"),
        ({"ingress": {"tls": [{"hosts": ["a.example"]}]}}, "/ingress/tls/0"),
    ],
)
def test_values_schema_refuses_bad_values(chart, values: dict[str, Any], where: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmValuesError, match=where):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):  # install/template check it too
        chart.render(values, name=RELEASE)


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_schema_accepts_every_shipped_configuration(chart, case: str) -> None:
    import helm_python as helm

    values = CASES[case]
    try:
        chart.validate_schema(values)
    except helm.HelmValuesError as e:
        pytest.fail(f"values.schema.json refuses the shipped {case!r} values: {e}")
    # the same configuration with one bad field is refused: the schema really ran on it
    bad = {**values, "settings": {**values.get("settings", {}), "window": 0}}
    with pytest.raises(helm.HelmValuesError, match="/settings/window"):
        chart.validate_schema(bad)
