"""Fixtures for the gateway tests: a real redis-server, both tenant stores, a fake clock.

Coroutine tests run without a plugin: the hook below runs them with asyncio.run.
Store-parametrized tests run once against the embedded store and once against
Redis (each test in its own key namespace of one session-wide server).
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tenancy_test_utils import FakeClock, StoreFactory


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = inspect.signature(pyfuncitem.obj).parameters
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server (no persistence) for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not on PATH; `make test` installs it "
            "(or: apt-get install -y redis-server)",
            pytrace=False,
        )
    port = _free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    flags = f"--port {port} --bind 127.0.0.1 --appendonly no --dir {workdir}".split()
    proc = subprocess.Popen([binary, *flags, "--save", "", "--logfile", str(workdir / "log")])
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "log").read_text() if (workdir / "log").exists() else ""
                    pytest.fail(f"redis-server did not start on port {port}:\n{log}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest, clock: FakeClock) -> StoreFactory:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return StoreFactory(request.param, url, clock)
