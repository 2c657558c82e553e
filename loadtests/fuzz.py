"""Property-based fuzz of the published OpenAPI schema with schemathesis (``make fuzz``).

Starts a local gateway (demo models, embedded store, tiny token limits so generated
requests decode in milliseconds), creates a tenant, then runs ``schemathesis run`` on
/openapi.json twice: with the tenant's key and with a wrong key. Checks: no 5xx
(``not_a_server_error``), every status, content type and body as documented
(``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``). Exit 0 iff both runs pass; reports in ``--out``.
Admin endpoints are left out of the keyed run (it would create and delete tenants).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import httpx

CHECKS = ",".join(
    ("not_a_server_error", "status_code_conformance", "content_type_conformance",
     "response_schema_conformance")
)  # fmt: skip
LIMITS = {"CITER_MAX_TOKENS_CAP": "8", "CITER_DEFAULT_MAX_TOKENS": "4", "CITER_MAX_QUEUE": "256"}


def schemathesis(url: str, key: str, examples: int, seed: int, report: Path) -> int:
    """One ``schemathesis run``; its exit code (0: no failure)."""
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [
        str(exe), "run", f"{url}/openapi.json", "--checks", CHECKS,
        "--max-examples", str(examples), "--seed", str(seed),
        "--header", f"Authorization: Bearer {key}", "--request-timeout", "60",
        "--exclude-path-regex", "^/admin/", "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(report),
    ]  # fmt: skip
    print("$", " ".join(c if "Bearer" not in c else "Authorization: Bearer ***" for c in cmd))
    return subprocess.run(cmd, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    from loadtests.server import local_gateway
    from loadtests.tenants import create_tenant

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=50, help="max examples per operation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("build/fuzz"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with local_gateway(args.out / "gateway.log", **LIMITS) as gw:
        with httpx.Client(
            base_url=gw.url, headers={"Authorization": f"Bearer {gw.admin_key}"}
        ) as c:
            tenant = create_tenant(
                c, "fuzz", 1e9, {"slm_prompt": 0.01, "llm_completion": 0.2}, "degrade"
            )
        codes = {
            "valid key": schemathesis(
                gw.url, tenant["key"], args.examples, args.seed, args.out / "valid-key.xml"
            ),
            "wrong key": schemathesis(
                gw.url, "sk-citer-wrong", args.examples, args.seed, args.out / "wrong-key.xml"
            ),
        }
    for name, code in codes.items():
        print(f"schemathesis with a {name}: {'passed' if code == 0 else f'FAILED (exit {code})'}")
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
