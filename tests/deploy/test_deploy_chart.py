"""The chart's objects are wired to each other and to the gateway's real routes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.conftest import (
    CHART,
    RELEASE,
    ci_values,
    gateway_container,
    gateway_env,
    kinds,
    one,
)


def routes() -> set[str]:
    from gateway.info.router import router

    return {r.path for r in router.routes}


def pod_labels(objs, name: str = RELEASE) -> dict[str, str]:
    kind = "StatefulSet" if name.endswith("-redis") else "Deployment"
    return one(objs, kind, name)["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_ports_probes_and_service_agree(render) -> None:
    objs = render()
    c = gateway_container(objs)
    (port,) = c["ports"]
    svc = one(objs, "Service")
    (sp,) = svc["spec"]["ports"]
    assert sp["targetPort"] == port["name"] == "http"
    assert sp["port"] == port["containerPort"] == int(gateway_env(objs)["CITER_PORT"])
    assert selects(svc["spec"]["selector"], pod_labels(objs))
    real = routes()
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    for name, probe in probes.items():
        assert probe["port"] == "http", name
        assert probe["path"] in real, f"{name} hits {probe['path']}, not a gateway route"
    assert probes["livenessProbe"]["path"] == "/health"
    assert probes["readinessProbe"]["path"] == "/ready"  # models stepping, store reachable


def test_gpu_pod_mounts_the_models_read_only_and_lands_on_gpu_nodes(render) -> None:
    objs = render()
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = gateway_container(objs)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "models"]
    assert mount["readOnly"] is True
    assert any(v["name"] == "models" and "persistentVolumeClaim" in v for v in pod["volumes"])
    env = gateway_env(objs)
    for key in ("CITER_SLM", "CITER_LLM", "CITER_ROUTER_CARD"):
        assert env[key].startswith(mount["mountPath"] + "/"), key
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # The bootstrap key file must land on a writable volume.
    writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
    assert any(env["CITER_BOOTSTRAP_KEY_FILE"].startswith(p + "/") for p in writable)


def test_cpu_demo_needs_no_gpu_and_no_volume(render) -> None:
    objs = render(ci_values("cpu-demo"))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    c = gateway_container(objs)
    assert "nvidia.com/gpu" not in str(c["resources"]) and "tolerations" not in pod
    assert "nodeSelector" not in pod
    assert not any(v["name"] == "models" for v in pod["volumes"])
    assert c["image"].endswith(":cpu-0.1.0")


def test_admin_key_from_chart_secret_or_existing_secret(render) -> None:
    objs = render({"adminKey": {"value": "sk-admin-test"}})
    ref = gateway_env(objs)["CITER_ADMIN_KEY"]["secretKeyRef"]
    secret = one(objs, "Secret", ref["name"])
    assert secret["stringData"][ref["key"]] == "sk-admin-test"
    assert "sk-admin-test" not in str(one(objs, "ConfigMap"))  # never in plain config

    objs = render({"adminKey": {"existingSecret": "ops-admin", "existingSecretKey": "token"}})
    assert gateway_env(objs)["CITER_ADMIN_KEY"]["secretKeyRef"] == {
        "name": "ops-admin",
        "key": "token",
    }
    assert "Secret" not in kinds(objs)  # the chart does not own someone else's Secret


def test_in_chart_redis_statefulset_is_what_the_gateway_talks_to(render) -> None:
    objs = render(ci_values("full"))
    url = gateway_env(objs)["CITER_TENANCY_STORE_URL"]
    sts = one(objs, "StatefulSet", f"{RELEASE}-redis")
    svc = one(objs, "Service", f"{RELEASE}-redis")
    assert url == f"redis://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}/0"
    assert (
        svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    )
    assert selects(svc["spec"]["selector"], pod_labels(objs, f"{RELEASE}-redis"))
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert "--appendonly" in c["args"] and sts["spec"]["volumeClaimTemplates"]
    # Gateway pods are not selected by the Redis service, nor the other way round.
    assert not selects(svc["spec"]["selector"], pod_labels(objs))


@pytest.mark.parametrize(
    "redis",
    [{"url": "redis://:pw@redis.shared:6379/2"}, {"existingSecret": "shared-redis"}],
)
def test_external_redis_url_stays_in_a_secret(render, redis: dict[str, Any]) -> None:
    objs = render({"redis": redis, "replicaCount": 2})
    ref = gateway_env(objs)["CITER_TENANCY_STORE_URL"]["secretKeyRef"]
    assert "StatefulSet" not in kinds(objs)
    if "url" in redis:
        assert one(objs, "Secret", ref["name"])["stringData"][ref["key"]] == redis["url"]
    else:
        assert ref == {"name": "shared-redis", "key": "redis-url"}


@pytest.mark.parametrize("values", [{"replicaCount": 2}, {"autoscaling": {"enabled": True}}])
def test_replicas_without_a_shared_store_are_refused(chart, values) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmRenderError, match="shared tenant store"):
        chart.render(values, name=RELEASE)


def test_hpa_pdb_and_service_monitor_target_the_gateway(render) -> None:
    objs = render(ci_values("full"))
    deploy = one(objs, "Deployment")
    assert "replicas" not in deploy["spec"]  # the HPA owns the count
    hpa = one(objs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deploy["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = one(objs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(objs))
    sm = one(objs, "ServiceMonitor")
    svc = one(objs, "Service")
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert ep["path"] == "/metrics" and ep["path"] in routes()
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert {"HorizontalPodAutoscaler", "ServiceMonitor"}.isdisjoint(kinds(render()))


def test_grafana_dashboard_is_an_optional_sidecar_configmap(render) -> None:
    names = {o["metadata"]["name"] for o in render()}
    assert f"{RELEASE}-dashboard" not in names  # off by default
    cm = one(render(ci_values("full")), "ConfigMap", f"{RELEASE}-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "citer.json").read_text())
    assert json.loads(cm["data"]["citer.json"]) == shipped  # the file the gateway tests check


def test_ingress_is_optional_and_routes_to_the_gateway_service(render) -> None:
    assert "Ingress" not in kinds(render())  # off by default
    objs = render(ci_values("full"))
    ing, svc = one(objs, "Ingress"), one(objs, "Service", RELEASE)
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    (rule,) = ing["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert rule["host"] == "citer.example.com" and path["path"] == "/"
    assert backend["name"] == svc["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
    assert ing["spec"]["tls"] == [{"secretName": "citer-tls", "hosts": ["citer.example.com"]}]


def test_otlp_endpoint_reaches_the_gateway(render) -> None:
    env = gateway_env(render({"otel": {"endpoint": "http://collector:4318"}}))
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
    assert env["OTEL_SERVICE_NAME"] == "citer-gateway"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    grpc = gateway_env(render({"otel": {"endpoint": "http://c:4317", "protocol": "grpc"}}))
    assert grpc["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"


def test_llm_pool_is_a_vllm_server_the_gateway_reaches_by_url(render) -> None:
    objs = render(ci_values("full"))
    svc = one(objs, "Service", f"{RELEASE}-llm")
    pool = one(objs, "Deployment", f"{RELEASE}-llm")
    (c,) = pool["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["vllm", "serve"] and c["image"].startswith("vllm/vllm-openai:")
    assert f"--port={c['ports'][0]['containerPort']}" in c["args"]
    assert "--served-model-name=llm" in c["args"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pool["spec"]["replicas"] == 2
    assert selects(svc["spec"]["selector"], pool["spec"]["template"]["metadata"]["labels"])
    assert not selects(svc["spec"]["selector"], pod_labels(objs))  # gateways not in the pool
    port = svc["spec"]["ports"][0]["port"]
    assert gateway_env(objs)["CITER_LLM_URL"] == f"http://{svc['metadata']['name']}:{port}/v1"

    assert gateway_env(objs)["CITER_LLM_MODEL"] == "llm"  # the pool's served name
    assert "CITER_LLM_API_KEY" not in gateway_env(objs)

    key = {"existingSecret": "cloud-llm", "existingSecretKey": "token"}
    external = {"externalUrl": "https://llm.example/v1", "servedModelName": "big", "apiKey": key}
    env = gateway_env(render({"llmPool": external}))
    assert env["CITER_LLM_URL"] == "https://llm.example/v1" and env["CITER_LLM_MODEL"] == "big"
    assert env["CITER_LLM_API_KEY"] == {"secretKeyRef": {"name": "cloud-llm", "key": "token"}}
    default = gateway_env(render({"llmPool": {"apiKey": key}}))
    assert "CITER_LLM_URL" not in default and "CITER_LLM_API_KEY" not in default  # local LLM


def test_config_change_rolls_the_pods(render) -> None:
    def checksum(values):
        return one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    assert checksum({}) != checksum({"settings": {"window": 12}})
