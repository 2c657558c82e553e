"""Live gateways for the tests: a ``citer serve`` subprocess, or uvicorn on a thread
of the test process (when a test must see the app's in-memory span exporter).

Both listen on a free loopback port and are used over real HTTP, by httpx and
the official ``openai`` SDK, like users do.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ADMIN_KEY = "sk-admin-test"
PRICES = {"slm_prompt": 1.0, "slm_completion": 2.0, "llm_prompt": 10.0, "llm_completion": 20.0}
DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"
# A chat template in the tiny test vocabulary (no newline token there).
TINY_TEMPLATE = (
    "{% for m in messages %}{{ m['role'][0] }}:{{ m['content'] }}|{% endfor %}"
    "{% if add_generation_prompt %}a:{% endif %}"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_pair() -> tuple[Path, Path] | None:
    """The shipped demo pair once it is trained, else None."""
    slm, llm = DEMO / "slm", DEMO / "llm"
    if (slm / "model.safetensors").is_file() and (llm / "model.safetensors").is_file():
        return slm, llm
    return None


def tiny_pair_with_template(model_dirs: tuple[Path, Path], root: Path) -> tuple[Path, Path]:
    """Copies of the tiny random pair (tests/conftest.py) with a chat template."""
    from transformers import AutoTokenizer

    out = []
    for src in model_dirs:
        dst = root / src.name
        shutil.copytree(src, dst)
        tok = AutoTokenizer.from_pretrained(dst)
        tok.chat_template = TINY_TEMPLATE
        tok.save_pretrained(dst)
        out.append(dst)
    return out[0], out[1]


class Gateway:
    """Base URL plus admin helpers, whatever runs the server."""

    url: str

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        )

    def new_tenant(self, limit: float = 1000.0, **config: Any) -> tuple[str, str]:
        """(tenant id, API key) of a fresh tenant; ``config`` adds TenantConfig fields."""
        tid = "t-" + uuid.uuid4().hex[:10]
        config = {"budget": {"limit": limit, "period": "1d"}, "prices": PRICES, **config}
        body = {"id": tid, "config": config}
        with self.admin() as c:
            r = c.post("/admin/tenants", json=body)
        assert r.status_code == 201, r.text
        return tid, r.json()["key"]["plaintext"]

    def usage(self, tenant_id: str) -> dict[str, Any]:
        with self.admin() as c:
            r = c.get(f"/admin/tenants/{tenant_id}/usage")
        assert r.status_code == 200, r.text
        return r.json()

    def metrics(self, per_tenant: bool = True) -> str:
        """The /metrics text; with the admin key (per-tenant series) unless told not to."""
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"} if per_tenant else {}
        return httpx.get(f"{self.url}/metrics", headers=headers, timeout=10).text


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """Value of the first sample ``name`` whose labels include ``labels``; None if absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


class GatewayProcess(Gateway):
    """``python -m citer.cli serve`` with CITER_* settings from ``env``."""

    def __init__(self, slm: Path, llm: Path, log: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full = {
            **os.environ,
            "CITER_SLM": str(slm),
            "CITER_LLM": str(llm),
            "CITER_PORT": str(self.port),
            "CITER_ADMIN_KEY": ADMIN_KEY,
            "CITER_LOG_LEVEL": "warning",
            "OMP_NUM_THREADS": "1",
            # the start-up timing (auto) costs seconds per gateway: the session gateway
            # of conftest.py runs it, the rest skip it
            "CITER_SPECULATIVE_MAX_BATCH": "1",
            **env,
        }
        if not Path(slm).resolve().is_relative_to(DEMO):  # a card, if any, is the demo pair's
            full.setdefault("CITER_POLICY", "confidence")
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "citer.cli", "serve"],
            env=full,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, text = self.proc.returncode, self.log.read_text()
                raise RuntimeError(f"gateway exited {code}:\n{text}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gateway not ready after {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


class ThreadGateway(Gateway):
    """uvicorn serving ``create_app(settings, span_exporter)`` on a thread of this process."""

    def __init__(self, settings: Any, span_exporter: Any = None) -> None:
        import uvicorn

        from gateway.app import create_app

        self.port = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, span_exporter=span_exporter)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.app = app
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("in-process gateway did not start")
            time.sleep(0.05)

    @property
    def state(self) -> Any:
        return self.app.state.citer

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


CANDIDATES = ["hello", "xyz", "12+30=", "sort: 9 8 7 6 5 4 3 2 1", "The answer is", "A shop has"]


def long_request(gw: Gateway, key: str, tokens: int) -> dict[str, Any]:
    """A /v1/completions body that provably runs ``tokens`` tokens (finish "length").

    Holding and disconnect tests need a request that is still decoding when the
    client acts; which prompts run long depends on the pair, so this asks it.
    """
    headers = {"Authorization": f"Bearer {key}"}
    for seed in (None, 0, 1, 2, 3):
        for prompt in CANDIDATES:
            body = {"model": "llm", "prompt": prompt, "max_tokens": tokens,
                    "temperature": 0 if seed is None else 1.0, "seed": seed}  # fmt: skip
            r = httpx.post(f"{gw.url}/v1/completions", headers=headers, json=body, timeout=60)
            if r.status_code == 200 and r.json()["choices"][0]["finish_reason"] == "length":
                return body
    raise RuntimeError(f"no candidate prompt runs {tokens} tokens on this model pair")
