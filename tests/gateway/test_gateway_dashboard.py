"""The shipped Grafana dashboard (helm/dashboards/citer.json) against a real Prometheus
server scraping a live gateway: after traffic, every query of every panel returns data.

Prometheus scrapes ``/metrics`` every second without a key (the scrape a cluster's
Prometheus does: per-tenant counters come summed). Traffic runs twice, with scrapes in
between, so every counter's series exists before it grows and rates are not zero.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_gateway import free_port, metric_value

DASHBOARD = Path(__file__).resolve().parents[2] / "helm" / "dashboards" / "citer.json"


@pytest.fixture(scope="module")
def prometheus(gateway, tmp_path_factory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not on PATH; `make test` installs it "
                    "(or: apt-get install -y prometheus)", pytrace=False)  # fmt: skip
    root = tmp_path_factory.mktemp("prometheus")
    target = gateway.url.removeprefix("http://")
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: citer\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root}/data",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(root / "log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _get(url, "/-/ready").status_code == 200, "prometheus ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _get(url: str, path: str, **params) -> httpx.Response:
    try:
        return httpx.get(url + path, params=params, timeout=10)
    except httpx.TransportError:
        return httpx.Response(599)


def _until(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def query(url: str, expr: str) -> list[dict]:
    r = _get(url, "/api/v1/query", query=expr)
    assert r.status_code == 200 and r.json()["status"] == "success", (expr, r.text)
    return r.json()["data"]["result"]


def traffic(gateway, key: str, broke: str) -> None:
    """Chat and completions, streamed and not, on every served model; one budget refusal."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url + "/v1", headers=headers, timeout=120) as c:
        for model in ("citer", "slm", "llm"):
            msg = [{"role": "user", "content": "What is 17 + 25?"}]
            for stream in (False, True):
                body = {"model": model, "messages": msg, "max_tokens": 24, "stream": stream}
                assert c.post("/chat/completions", json=body).status_code == 200
            body = {"model": model, "prompt": "What is", "max_tokens": 3, "temperature": 0}
            assert c.post("/completions", json=body).status_code == 200
        refused = c.post("/chat/completions", headers={"Authorization": f"Bearer {broke}"},
                         json={"model": "llm", "messages": msg, "max_tokens": 500})  # fmt: skip
        assert refused.status_code == 429


def scraped(gateway, prom: str) -> bool:
    """Prometheus holds the gateway's current generated-token count (a scrape came after)."""
    now = metric_value(gateway.metrics(per_tenant=False), "vllm:generation_tokens_total",
                       model_name="llm")  # fmt: skip
    got = query(prom, 'vllm:generation_tokens_total{model_name="llm"}')
    return bool(got) and float(got[0]["value"][1]) == now


def test_every_dashboard_panel_gets_data_from_a_real_prometheus(gateway, prometheus) -> None:
    key = gateway.new_tenant(limit=1e6)[1]
    broke = gateway.new_tenant(limit=1e-6)[1]
    for _ in range(2):
        traffic(gateway, key, broke)
        _until(lambda: scraped(gateway, prometheus), "a scrape after the traffic")
    time.sleep(1.5)  # one more scrape: the last increase is inside every rate window
    dash = json.loads(DASHBOARD.read_text())
    assert len(dash["panels"]) >= 12
    empty = []
    for panel in dash["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$model_name", ".*").replace("$__rate_interval", "1m")
            values = [float(s["value"][1]) for s in query(prometheus, expr)]
            if not any(math.isfinite(v) for v in values):
                empty.append(f"{panel['title']}: {target['legendFormat']}: {values}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
