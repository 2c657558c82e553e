"""HTTP conventions operators expect of an OpenAI server: a caller's X-Request-ID echoed
(errors and streams too), CORS only for the origins configured, JSON logs with one
record per request, and vLLM's /tokenize and /detokenize behind the API key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from live_gateway import GatewayProcess

MSG = [{"role": "user", "content": "What is 12 + 30?"}]


@pytest.fixture(scope="module")
def cors_gateway(gateway_models, tmp_path_factory) -> Iterator[GatewayProcess]:
    """CORS for one origin, JSON logs at info."""
    log = tmp_path_factory.mktemp("gw-cors") / "gateway.log"
    gw = GatewayProcess(*gateway_models, log, CITER_CORS_ORIGINS="https://app.example",
                        CITER_LOG_FORMAT="json", CITER_LOG_LEVEL="info")  # fmt: skip
    yield gw
    gw.stop()


def _h(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def test_x_request_id_is_echoed_on_answers_streams_and_errors(gateway) -> None:
    _, key = gateway.new_tenant()
    body = {"model": "citer", "messages": MSG, "max_tokens": 4}
    url = gateway.url + "/v1/chat/completions"
    r = httpx.post(url, json=body, headers=_h(key, **{"X-Request-ID": "req-1.a:b"}), timeout=60)
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-1.a:b"
    assert r.json()["id"].startswith("chatcmpl-")  # the gateway's own id stays in the body
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=60,
                      headers=_h(key, **{"X-Request-ID": "s-2"})) as s:  # fmt: skip
        assert s.headers["x-request-id"] == "s-2" and "[DONE]" in s.read().decode()
    bad = httpx.post(url, json={**body, "temperature": 9}, timeout=60,
                     headers=_h(key, **{"X-Request-ID": "e-3"}))  # fmt: skip
    assert bad.status_code == 400 and bad.headers["x-request-id"] == "e-3"
    odd = httpx.post(url, json=body, headers=_h(key, **{"X-Request-ID": "a b"}), timeout=60)
    assert odd.status_code == 400 and odd.json()["error"]["param"] == "x-request-id"
    own = httpx.post(url, json=body, headers=_h(key), timeout=60)
    assert own.headers["x-request-id"] == own.json()["id"]  # none given: the gateway's


def test_cors_is_off_by_default_and_on_for_configured_origins(gateway, cors_gateway) -> None:
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    off = httpx.options(gateway.url + "/v1/chat/completions", headers=pre, timeout=30)
    assert "access-control-allow-origin" not in off.headers
    on = httpx.options(cors_gateway.url + "/v1/chat/completions", headers=pre, timeout=30)
    assert on.status_code == 200
    assert on.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(cors_gateway.url + "/v1/chat/completions", timeout=30,
                          headers={**pre, "Origin": "https://evil.example"})  # fmt: skip
    assert "access-control-allow-origin" not in other.headers


def test_tokenize_and_detokenize_as_vllm_serves_them(gateway) -> None:
    _, key = gateway.new_tenant()
    post = lambda path, body: httpx.post(gateway.url + path, json=body,  # noqa: E731
                                         headers=_h(key), timeout=30)  # fmt: skip
    t = post("/tokenize", {"model": "citer", "prompt": "What is 12 + 30?"}).json()
    assert t["count"] == len(t["tokens"]) > 3 and t["max_model_len"] > t["count"]
    back = post("/detokenize", {"model": "llm", "tokens": t["tokens"]}).json()["prompt"]
    assert "What is 12 + 30?" in back
    chat = post("/tokenize", {"model": "slm", "messages": MSG}).json()
    done = httpx.post(gateway.url + "/v1/chat/completions", headers=_h(key), timeout=60,
                      json={"model": "slm", "messages": MSG, "max_tokens": 1}).json()  # fmt: skip
    assert chat["count"] == done["usage"]["prompt_tokens"]  # the chat endpoint's own template
    assert httpx.post(gateway.url + "/tokenize", json={"model": "citer", "prompt": "x"},
                      timeout=30).status_code == 401  # fmt: skip
    assert post("/tokenize", {"model": "gpt-9", "prompt": "x"}).status_code == 404
    both = post("/tokenize", {"model": "citer", "prompt": "x", "messages": MSG})
    assert both.status_code == 400 and both.json()["error"]["param"] == "prompt"
    far = post("/detokenize", {"model": "citer", "tokens": [10**9]})
    assert far.status_code == 400 and far.json()["error"]["param"] == "tokens"


def test_json_logs_carry_one_record_per_request(cors_gateway) -> None:
    _, key = cors_gateway.new_tenant()
    r = httpx.post(cors_gateway.url + "/v1/chat/completions", timeout=60,
                   headers=_h(key, **{"X-Request-ID": "trace-me"}),
                   json={"model": "citer", "messages": MSG, "max_tokens": 5})  # fmt: skip
    assert r.status_code == 200
    for _ in range(50):  # the record is written once the run has settled
        lines = cors_gateway.log.read_text().splitlines()
        records = [json.loads(x) for x in lines if x.startswith("{")]
        done = [x for x in records if x.get("client_request_id") == "trace-me"]
        if done:
            break
        time.sleep(0.1)
    assert len(records) > 3 and all({"ts", "level", "logger", "message"} <= set(x) for x in records)
    (rec,) = done
    assert rec["logger"] == "citer.requests" and rec["request_id"] == r.json()["id"]
    assert rec["model"] == "citer" and rec["outcome"] == "completed"
    assert rec["completion_tokens"] == r.json()["usage"]["completion_tokens"]
    assert rec["latency_s"] > 0
    assert 0.0 <= rec["llm_share"] <= 1.0 and rec["tenant"]
