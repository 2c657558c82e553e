"""Fixtures for the deployment checks: the chart rendered by a real Helm, offline.

Helm is the v4 Go SDK itself (``helm-python-sdk`` bundles it as a native library), so
templates, ``fail`` calls and ``values.schema.json`` behave exactly as under ``helm
template``/``helm install``; no cluster and no network are involved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm"
RELEASE = "citer"  # release name: object names are "citer", "citer-redis", "citer-llm"

Objects = list[dict[str, Any]]


def ci_values(name: str) -> dict[str, Any]:
    """A values file from helm/ci/ (the chart's own example configurations)."""
    return yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    import helm_python as helm  # the dev extra brings it: a missing Helm fails, never skips

    with helm.Chart.load(str(CHART)) as c:
        yield c


@pytest.fixture(scope="session")
def render(chart: Any) -> Callable[..., Objects]:
    """values -> every rendered Kubernetes object (templates of nothing give none)."""

    def _render(values: dict[str, Any] | None = None) -> Objects:
        out = chart.render(values or {}, name=RELEASE, namespace="serving", is_install=True)
        return [
            doc
            for path, text in sorted(out.items())
            if path.endswith((".yaml", ".yml"))
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    return _render


def one(objs: Objects, kind: str, name: str = RELEASE) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, got {[o['kind'] for o in objs]}"
    return found[0]


def kinds(objs: Objects) -> set[str]:
    return {o["kind"] for o in objs}


def gateway_container(objs: Objects) -> dict[str, Any]:
    (c,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def gateway_env(objs: Objects) -> dict[str, Any]:
    """Every variable the gateway container sees: its ConfigMap (envFrom), then ``env``
    (which wins). Literal values are strings; ``valueFrom`` entries stay dicts."""
    c = gateway_container(objs)
    env: dict[str, Any] = {}
    for src in c.get("envFrom", []):
        cm = one(objs, "ConfigMap", src["configMapRef"]["name"])
        env.update(cm["data"])
    for e in c.get("env", []):
        env[e["name"]] = e["value"] if "value" in e else e["valueFrom"]
    return env
