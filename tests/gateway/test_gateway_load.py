"""A short headless Locust run (loadtests/locustfile.py) against the live gateway:
streaming users on several tenants and policies, and a tenant whose budget runs out."""

from __future__ import annotations

from pathlib import Path

from live_gateway import ADMIN_KEY

from loadtests.run import count, locust_command, read_stats, run_locust, summarize
from loadtests.tenants import create_tenants, write_spec


def test_short_locust_run_has_latencies_and_expected_429s(gateway, tmp_path: Path) -> None:
    spec = create_tenants(gateway.url, ADMIN_KEY, steady=2, budget=True, prefix="locust")
    write_spec(spec, tmp_path / "tenants.json")
    # 4 users: 3 streaming + the budget user (fixed_count=1); 8 s, 32-token answers.
    cmd = locust_command(gateway.url, tmp_path / "tenants.json", tmp_path, "8s", 4, 4, 32, True)
    proc = run_locust(cmd, timeout_s=180, capture=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = summarize(read_stats(tmp_path))
    assert all(v["failures"] == 0 for v in stats.values()), stats
    streams = {k for k in stats if k.startswith("POST chat ")}
    assert len(streams) >= 3, streams  # the policy mix is drawn per request
    assert count(stats, "TTFT") >= 3 and count(stats, "ITL") >= 1, stats
    assert all(0 < v["median_ms"] < 60_000 for k, v in stats.items() if k.startswith("TTFT"))
    refused = stats.get("BUDGET 429 insufficient_quota", {"count": 0})["count"]
    assert refused >= 1, stats
    usage = gateway.usage(spec["budget"]["id"])
    assert usage["requests"]["rejected"] == refused  # every 429 the gateway sent was counted
    assert usage["spent"] <= usage["limit"] and usage["reserved"] == 0
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert "TTFT" in (tmp_path / "locust_stats.csv").read_text()
