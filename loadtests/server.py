"""A local ``citer serve`` for ``make loadtest`` / ``make soak``: the demo models
(or whatever CITER_SLM / CITER_LLM say), the embedded store, a free loopback port,
a fresh admin key; stopped (SIGTERM, then SIGKILL) when the block ends."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 180.0  # model loading on a busy 2-core machine


@dataclass(frozen=True)
class LocalGateway:
    url: str
    admin_key: str
    pid: int
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_gateway(log: Path, **env: str) -> Iterator[LocalGateway]:
    """Start the gateway, wait for /ready, yield it, stop it. ``env`` adds CITER_* settings.

    The store is always the embedded one: a run must own the tenants it checks."""
    port, admin_key = free_port(), "sk-admin-" + secrets.token_hex(16)
    full = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CITER_BOOTSTRAP_TENANT")}
    full.pop("CITER_TENANCY_STORE_URL", None)
    full |= {"CITER_HOST": "127.0.0.1", "CITER_PORT": str(port), "CITER_ADMIN_KEY": admin_key}
    full.setdefault("CITER_LOG_LEVEL", "warning")
    full |= env
    log.parent.mkdir(parents=True, exist_ok=True)
    # SIGTERM (a killed make, a CI timeout) unwinds like Ctrl-C, so the gateway stops too.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citer.cli", "serve"], env=full, stdout=out, stderr=out
        )
        gw = LocalGateway(f"http://127.0.0.1:{port}", admin_key, proc.pid, log)
        try:
            wait_ready(proc, f"{gw.url}/ready", log, "gateway", READY_TIMEOUT_S)
            yield gw
        finally:
            _stop(proc)
            signal.signal(signal.SIGTERM, previous)


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
    what: str,
    timeout_s: float,
    interval_s: float = 0.2,
) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval_s)
    raise RuntimeError(f"{what} not ready after {timeout_s:g} s; log: {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
