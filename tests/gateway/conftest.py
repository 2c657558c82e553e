"""Fixtures for the gateway tests: a real redis-server, both tenant stores, a fake clock,
live gateway processes (embedded store / Redis) and a fake OTLP collector.

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
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis
from live_gateway import GatewayProcess
from otlp_collector import OTLPCollector
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


# -- live gateways (see live_gateway.py) -------------------------------------------------


@pytest.fixture(scope="session")
def gateway_models(model_dirs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo pair once trained, else the tiny random pair with a chat template."""
    from live_gateway import demo_pair, tiny_pair_with_template

    return demo_pair() or tiny_pair_with_template(model_dirs, tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[OTLPCollector]:
    collector = OTLPCollector()
    yield collector
    collector.close()


@pytest.fixture(scope="session")
def gateway(gateway_models, otlp_collector, tmp_path_factory) -> Iterator[GatewayProcess]:
    """``citer serve`` with the embedded store; exports traces to the fake collector."""
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    gw = GatewayProcess(
        *gateway_models,
        log,
        CITER_MAX_BATCH="8",
        CITER_SPECULATIVE_MAX_BATCH="auto",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def key(gateway) -> str:
    """A fresh tenant's API key per test module (1000 cost units)."""
    return gateway.new_tenant(limit=1000.0)[1]


@pytest.fixture(scope="module")
def client(gateway, key) -> openai.OpenAI:
    """The official openai client on the embedded-store gateway, with the module's key."""
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="session")
def redis_gateway(gateway_models, redis_url, tmp_path_factory) -> Iterator[GatewayProcess]:
    """``citer serve`` with its tenants in the session's redis-server."""
    log = tmp_path_factory.mktemp("gw-redis") / "gateway.log"
    ns = "gw-" + uuid.uuid4().hex[:8]
    gw = GatewayProcess(
        *gateway_models, log, CITER_MAX_BATCH="8", REDIS_URL=redis_url, CITER_TENANCY_NAMESPACE=ns,
        CITER_KV_RESERVE_TOKENS="64", CITER_SPECULATIVE_MAX_BATCH="4",
    )  # fmt: skip
    gw.namespace = ns  # type: ignore[attr-defined]  # tests that reach into its keys
    yield gw
    gw.stop()
