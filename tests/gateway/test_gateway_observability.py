"""Metrics, traces, and what only an in-process gateway can show: its spans (the SDK's
in-memory exporter), a full queue (503), a disabled admin API, an engine failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from live_gateway import ThreadGateway, demo_pair, free_port, long_request, metric_value
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

MSG = [{"role": "user", "content": "max of 4 9 2"}]
SPANS = {"budget.reserve", "engine.queue", "engine.prefill", "engine.decode", "budget.settle"}
NAMES = [
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:inter_token_latency_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:request_queue_time_seconds_bucket",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "citer:completion_tokens_total",
    "citer:llm_token_share_bucket",
    'citer:step_seconds_total{part="router"}',
    "citer:scheduler_steps_total",
    "citer:slm_draft_tokens_total",
    "citer:llm_calls_total",
    "citer:budget_spend_total",
    "citer:budget_remaining",
    "citer:requests_rejected_total",
    "citer:kv_cache_sequences",
]


def test_metrics_expose_vllm_and_citer_names_after_traffic(gateway) -> None:
    tid, key = gateway.new_tenant(limit=100.0)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    r = client.chat.completions.create(model="citer", messages=MSG, max_tokens=5, temperature=0)
    _, broke = gateway.new_tenant(limit=0.0, policy="reject")
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=broke, max_retries=0
        ).completions.create(model="citer", prompt="a", max_tokens=2)
    text = gateway.metrics()
    for name in NAMES:
        assert name in text, name
    spend = metric_value(text, "citer:budget_spend_total", tenant=tid)
    assert spend == pytest.approx(r.usage.model_extra["cost"])
    left = metric_value(text, "citer:budget_remaining", tenant=tid)
    assert left == pytest.approx(gateway.usage(tid)["remaining"])


def test_metrics_report_the_gateway_process_resident_memory(gateway) -> None:
    """process_resident_memory_bytes is the serving process's own RSS (the soak reads it)."""
    text = gateway.metrics()
    status = (Path("/proc") / str(gateway.proc.pid) / "status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("VmRSS:"))
    vm_rss = 1024 * int(line.split()[1])  # "VmRSS:  123456 kB"
    rss = metric_value(text, "process_resident_memory_bytes")
    assert rss is not None and rss > 50 * 2**20  # torch and two models are loaded
    assert abs(rss - vm_rss) < 0.2 * vm_rss  # read a moment apart, same process


def test_traces_are_exported_by_otlp(gateway, otlp_collector) -> None:
    _, key = gateway.new_tenant(limit=100.0)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    r = client.chat.completions.create(model="slm", messages=MSG, max_tokens=3, temperature=0)
    deadline = time.monotonic() + 10
    while True:
        roots = [s for s in otlp_collector.spans if _attr(s, "gen_ai.response.id") == r.id]
        if roots or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert roots and roots[0].name == "chat slm"
    children = {s.name for s in otlp_collector.spans if s.parent_span_id == roots[0].span_id}
    assert children == SPANS
    assert "/v1/traces" in otlp_collector.paths


def _attr(span, key: str):
    for kv in span.attributes:
        if kv.key == key:
            return kv.value.string_value
    return None


@pytest.fixture(scope="module")
def local(gateway_models, tmp_path_factory) -> Iterator[tuple[ThreadGateway, str]]:
    """An in-process gateway: one batch seat and one queue place, no admin key, a
    bootstrap tenant."""
    from gateway.settings import GatewaySettings

    key_file = tmp_path_factory.mktemp("boot") / "key"
    settings = GatewaySettings(
        slm=str(gateway_models[0]),
        llm=str(gateway_models[1]),
        port=free_port(),
        max_batch=1,
        max_queue=1,
        admin_key=None,
        bootstrap_tenant="boot",
        bootstrap_key_file=key_file,
        policy=None if demo_pair() else "confidence",  # a card, if any, is the demo pair's
    )
    exporter = InMemorySpanExporter()
    gw = ThreadGateway(settings, span_exporter=exporter)
    gw.exporter = exporter
    yield gw, key_file.read_text().strip()
    gw.stop()


def test_spans_of_one_request(local) -> None:
    gw, key = local
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    r = client.chat.completions.create(model="citer", messages=MSG, max_tokens=4, temperature=0)
    spans = gw.exporter.get_finished_spans()
    (root,) = [s for s in spans if s.attributes.get("gen_ai.response.id") == r.id]
    kids = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert {s.name for s in kids} == SPANS
    a = root.attributes
    assert root.name == "chat citer" and a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "citer" and a["gen_ai.request.max_tokens"] == 4
    assert a["gen_ai.usage.output_tokens"] == r.usage.completion_tokens
    assert a["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens
    assert a["citer.llm_tokens"] == r.usage.model_extra["llm_tokens"]
    assert a["citer.tenant"] == "boot" and a["citer.outcome"] == "completed"
    assert all(root.start_time <= s.start_time and s.end_time <= root.end_time for s in kids)


def test_a_callers_trace_is_continued_and_refusals_get_spans(local) -> None:
    """W3C traceparent in: the HTTP server span (FastAPI instrumentation) and the
    request's spans join that trace; refused requests get their server span too."""
    gw, key = local
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"Authorization": f"Bearer {key}", "traceparent": f"00-{trace_id}-{parent}-01"}
    body = {"model": "citer", "messages": MSG, "max_tokens": 3}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert r.status_code == 200 and r.headers["x-trace-id"] == trace_id
    bad = httpx.post(gw.url + "/v1/chat/completions", json={**body, "temperature": 9},
                     headers={"Authorization": f"Bearer {key}"}, timeout=60)  # fmt: skip
    nokey = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=60)
    assert (bad.status_code, nokey.status_code) == (400, 401)
    # A server span ends after its last byte is sent, so the client can see a
    # response before the span is exported: wait for all three, not just the first.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = gw.exporter.get_finished_spans()
        ours = [s for s in spans if f"{s.context.trace_id:032x}" == trace_id]
        codes = {_status(s) for s in spans if s.parent is None}
        done = any(s.attributes.get("gen_ai.response.id") == r.json()["id"] for s in ours)
        if done and {400, 401} <= codes:
            break
        time.sleep(0.1)
    (server,) = [s for s in ours if s.parent is not None and f"{s.parent.span_id:016x}" == parent]
    assert _status(server) == 200  # the HTTP server span
    (chat,) = [s for s in ours if s.name == "chat citer"]
    assert chat.parent.span_id == server.context.span_id
    assert chat.attributes["gen_ai.response.model"] == "citer"
    assert {400, 401} <= codes  # refused before any work, still traced
    for resp in (bad, nokey):
        assert len(resp.headers["x-trace-id"]) == 32


def _status(span) -> int | None:
    """The HTTP status of a server span (the semconv name before or after its 2023 rename)."""
    a = span.attributes
    return a.get("http.response.status_code", a.get("http.status_code"))


def test_queueing_then_503_and_a_queued_disconnect_costs_nothing(local) -> None:
    """A stream waits for its batch seat before it answers 200 (so a queue timeout can
    still be a 503); a client that leaves while queued costs nothing."""
    gw, key = local
    headers = {"Authorization": f"Bearer {key}"}
    long = {**long_request(gw, key, 300), "stream": True}  # outlives the next two requests
    before = asyncio.run(gw.state.store.usage("boot"))

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as c:
            async with c.stream("POST", "/v1/completions", json=long) as running:
                assert running.status_code == 200
                queued = asyncio.create_task(c.post("/v1/completions", json=long))
                while gw.state.scheduler.num_waiting() < 1:  # in the scheduler's queue
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.1)
                assert not queued.done()  # no 200 before it holds a seat
                r = await c.post("/v1/completions", json={**long, "stream": False})
                assert r.status_code == 503 and r.headers["retry-after"] == "1"
                assert r.json()["error"]["code"] == "server_overloaded"
                queued.cancel()  # the queued client leaves before it got a seat
                await running.aread()

    asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while gw.state.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    after = asyncio.run(gw.state.store.usage("boot"))
    assert after.requests.aborted == before.requests.aborted + 1
    assert after.requests.completed == before.requests.completed + 1
    assert after.reserved == 0 and gw.state.in_flight == 0 and not gw.state.scheduler.has_work()
    spans = gw.exporter.get_finished_spans()
    (root,) = [  # the queued request: its id never reached the client
        s for s in spans
        if s.attributes.get("citer.outcome") == "aborted"
        and s.attributes.get("gen_ai.usage.output_tokens") == 0
    ]  # fmt: skip
    kids = {s.name for s in spans if s.parent and s.parent.span_id == root.context.span_id}
    assert kids == {"budget.reserve", "engine.queue", "budget.settle"}  # never reached the engine
    assert root.attributes["citer.outcome"] == "aborted" and root.attributes["citer.cost"] == 0


def test_admin_api_is_off_without_admin_key(local) -> None:
    gw, key = local
    r = httpx.get(gw.url + "/admin/tenants", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


def test_engine_failure_mid_stream_is_an_error_event_and_settles(local, monkeypatch) -> None:
    gw, key = local
    st = gw.state

    def boom(*args, **kwargs):
        raise RuntimeError("LLM engine crashed")

    monkeypatch.setattr(st.scheduler.llm, "step", boom)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "llm", "prompt": "hello", "max_tokens": 5, "stream": True}
    with httpx.stream("POST", gw.url + "/v1/completions", headers=headers, json=body) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert '"error"' in events[-2] and "LLM engine crashed" in events[-2]
    assert events[-1] == "data: [DONE]"
    whole = httpx.post(gw.url + "/v1/completions", headers=headers, json={**body, "stream": False})
    assert whole.status_code == 500 and whole.json()["error"]["type"] == "server_error"
    monkeypatch.undo()
    usage = asyncio.run(st.store.usage("boot"))
    assert usage.requests.failed == 2 and usage.reserved == 0 and st.in_flight == 0


def test_traces_are_exported_by_otlp_grpc_to_a_receiver_process(gateway_models, tmp_path) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc: a gateway process exports to an OTLP/gRPC
    receiver in another process; a caller's trace is continued and the server span,
    the request span and its children arrive with the trace id of x-trace-id."""
    import json
    import subprocess
    import sys

    from live_gateway import GatewayProcess

    port, out = free_port(), tmp_path / "spans.jsonl"
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("otlp_grpc_receiver.py")), str(port),
         str(out)], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
    gw = GatewayProcess(*gateway_models, tmp_path / "gw.log", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
                        OTEL_BSP_SCHEDULE_DELAY="100")  # fmt: skip
    try:
        key = gw.new_tenant(limit=100.0)[1]
        caller = "4bf92f3577b34da6a3ce929d0e0e4736"
        r = httpx.post(f"{gw.url}/v1/chat/completions", timeout=60,
                       headers={"Authorization": f"Bearer {key}",
                                "traceparent": f"00-{caller}-00f067aa0ba902b7-01"},
                       json={"model": "slm", "messages": MSG, "max_tokens": 3})  # fmt: skip
        assert r.status_code == 200 and r.headers["x-trace-id"] == caller
        deadline, names = time.monotonic() + 20, set()
        while not {"chat slm", "budget.settle"} <= names and time.monotonic() < deadline:
            time.sleep(0.2)
            spans = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
            names = {s["name"] for s in spans if s["trace_id"] == caller}
        root = next(s for s in spans if s["name"] == "chat slm")
        assert root["attributes"]["gen_ai.response.id"] == r.json()["id"]
        server = next(s for s in spans if s["span_id"] == root["parent"])
        assert server["trace_id"] == caller and server["parent"] == "00f067aa0ba902b7"
        assert {s["name"] for s in spans if s["parent"] == root["span_id"]} == SPANS
    finally:
        gw.stop()
        receiver.terminate()
        receiver.wait(timeout=10)
