"""``make loadtest``: a local gateway, fresh tenants, headless Locust for a bounded time.

    python -m loadtests.run [--time 60s] [--users 8] [--spawn-rate 2] [--steady-tenants 3]
                            [--max-tokens 64] [--out build/loadtest]

Starts ``citer serve`` (embedded store, the demo models unless CITER_SLM / CITER_LLM
say otherwise), creates the tenants through the admin API, runs
loadtests/locustfile.py headless, stops the gateway. Writes under ``--out``:
``locust_stats.csv`` (+ ``_stats_history``, ``_failures``, ``_exceptions``),
``report.html``, ``locust.json`` (final stats), ``summary.json``, ``gateway.log``
and ``tenants.json`` (API keys, mode 0600). Exit code: Locust's (1 when any
request failed unexpectedly).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def locust_command(
    host: str,
    tenants: Path,
    out: Path,
    run_time: str,
    users: int,
    spawn_rate: float,
    max_tokens: int,
    quiet: bool = False,
) -> list[str]:
    """Headless Locust; in-flight streams get 30 s to finish when the time is up."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        run_time,
        "--stop-timeout",
        "30",
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "report.html"),
        "--json-file",
        str(out / "locust"),
        "--citer-tenants",
        str(tenants),
        "--citer-max-tokens",
        str(max_tokens),
    ]
    return [*cmd, "--only-summary"] if quiet else cmd


def run_locust(
    cmd: list[str], timeout_s: float | None = None, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run it with the repository importable (the locustfile imports loadtests, tasks)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        cmd, env=env, cwd=ROOT, timeout=timeout_s, text=True, capture_output=capture
    )


def read_stats(out: Path) -> list[dict[str, Any]]:
    """Final per-name entries (``locust.json``: method, name, num_requests, num_failures,
    response_times {ms: count}). Locust's CSV is a snapshot taken every second, so it
    can miss the last requests; the JSON is written after the run has stopped."""
    return json.loads((out / "locust.json").read_text())


def _percentile(hist: dict[str, int], q: float) -> float:
    total, seen = sum(hist.values()), 0
    for ms, n in sorted((float(k), v) for k, v in hist.items()):
        seen += n
        if seen >= q * total:
            return ms
    return float("nan")


def summarize(entries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """ "TYPE name" -> count, failures, median / p90 ms (Locust's rounded histogram)."""
    out = {}
    for e in entries:
        out[f"{e['method']} {e['name']}"] = {
            "count": e["num_requests"],
            "failures": e["num_failures"],
            "median_ms": _percentile(e["response_times"], 0.5),
            "p90_ms": _percentile(e["response_times"], 0.9),
        }
    return out


def count(summary: dict[str, dict[str, float]], kind: str) -> int:
    """Samples of one request type (TTFT, ITL, BUDGET, POST) over all names."""
    return sum(int(v["count"]) for k, v in summary.items() if k.startswith(kind + " "))


def main() -> None:
    from loadtests.server import local_gateway
    from loadtests.tenants import create_tenants, usage, write_spec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", default="60s", help="Locust run time (30s, 2m, ...)")
    ap.add_argument("--users", type=int, default=8, help="streaming users (+1 budget user)")
    ap.add_argument("--spawn-rate", type=float, default=2.0, help="users started per second")
    ap.add_argument("--steady-tenants", type=int, default=3, help="tenants the users spread over")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens per chat request")
    ap.add_argument("--out", type=Path, default=Path("build/loadtest"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with local_gateway(args.out / "gateway.log") as gw:
        spec = create_tenants(gw.url, gw.admin_key, args.steady_tenants, budget=True)
        write_spec(spec, args.out / "tenants.json")
        cmd = locust_command(
            gw.url,
            args.out / "tenants.json",
            args.out,
            args.time,
            args.users + 1,
            args.spawn_rate,
            args.max_tokens,
        )
        print("+", " ".join(cmd), flush=True)
        proc = run_locust(cmd)
        budget = usage(gw.url, gw.admin_key, spec["budget"]["id"])
    summary = summarize(read_stats(args.out))
    settings = {k: str(v) for k, v in vars(args).items()}
    result: dict[str, Any] = {
        "settings": settings,
        "locust_exit_code": proc.returncode,
        "failures": sum(int(v["failures"]) for v in summary.values()),
        "stats": summary,
        "budget_tenant": {k: budget[k] for k in ("limit", "spent", "reserved", "requests")},
    }
    (args.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{'type name':44} {'count':>6} {'fail':>5} {'median ms':>10} {'p90 ms':>9}")
    for key, v in sorted(summary.items()):
        print(
            f"{key[:44]:44} {v['count']:6d} {v['failures']:5d} "
            f"{v['median_ms']:10.1f} {v['p90_ms']:9.1f}"
        )
    print(f"failures: {result['failures']}; budget tenant: {json.dumps(result['budget_tenant'])}")
    print(f"CSV + HTML: {args.out}/locust_stats.csv, {args.out}/report.html")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
