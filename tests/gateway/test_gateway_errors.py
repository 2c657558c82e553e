"""Every error status, in OpenAI's error shape, from a live gateway."""

from __future__ import annotations

import httpx
import openai
import pytest
from live_gateway import long_request

MSG = [{"role": "user", "content": "hi"}]


def post(gateway, path: str, key: str | None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gateway.url + path, headers=headers, timeout=30, **kw)


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": "citer", "messages": MSG, "temperature": 5}, "temperature", "less than"),
        ({"model": "citer", "messages": MSG, "n": 2}, "n", "n>1 is not supported"),
        ({"model": "citer", "messages": MSG, "top_logprobs": 3}, "top_logprobs", "logprobs"),
        ({"model": "citer", "messages": []}, "messages", "at least 1"),
        ({"model": "citer", "messages": [{"role": "bot", "content": "x"}]}, "messages.0.role", ""),
        ({"model": "citer", "messages": MSG, "max_tokens": 99999}, "max_tokens", "limit of"),
        ({"model": "citer", "messages": MSG, "routing": {"treshold": 1}}, "routing.treshold", ""),
        (
            {
                "model": "citer",
                "messages": MSG,
                "routing": {"threshold": 0.2, "target_llm_share": 0.1},
            },
            "routing",
            "not both",
        ),  # fmt: skip
    ],
)
def test_invalid_values_are_400_naming_the_field(gateway, key, body, param, needle) -> None:
    err = error_of(post(gateway, "/v1/chat/completions", key, json=body), 400)
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert needle in err["message"]


def test_malformed_json_long_prompt_and_bad_token_ids_are_400(gateway, key) -> None:
    err = error_of(post(gateway, "/v1/chat/completions", key, content=b"{not json"), 400)
    assert "JSON" in err["message"]
    long = {"model": "citer", "prompt": [5] * 5000, "max_tokens": 2}
    err = error_of(post(gateway, "/v1/completions", key, json=long), 400)
    assert err["code"] == "context_length_exceeded" and "5000 tokens" in err["message"]
    assert err["param"] == "prompt"
    bad = {"model": "citer", "prompt": [5, 10**9], "max_tokens": 2}
    assert "token ids" in error_of(post(gateway, "/v1/completions", key, json=bad), 400)["message"]
    two = {"model": "citer", "prompt": ["a", "b"], "max_tokens": 2}
    assert "one prompt" in error_of(post(gateway, "/v1/completions", key, json=two), 400)["message"]


def test_sdk_raises_its_usual_exceptions(gateway, key) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="citer", messages=MSG, top_p=0)
    assert bad.value.param == "top_p"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    assert missing.value.code == "model_not_found"
    wrong = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-citer-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        wrong.chat.completions.create(model="citer", messages=MSG)
    assert auth.value.code == "invalid_api_key"


def test_missing_or_bad_key_is_401_and_unknown_route_404(gateway) -> None:
    body = {"model": "citer", "messages": MSG}
    assert error_of(post(gateway, "/v1/chat/completions", None, json=body), 401)["code"] == (
        "invalid_api_key"
    )
    r = httpx.post(gateway.url + "/v1/completions", json=body, headers={"Authorization": "Basic x"})
    assert error_of(r, 401)["code"] == "invalid_api_key"
    assert error_of(post(gateway, "/admin/tenants", "sk-wrong", json={}), 401)
    assert error_of(httpx.get(gateway.url + "/v1/nothing"), 404)["type"] == "not_found_error"


def test_oversized_body_is_413(gateway, key) -> None:
    big = {"model": "citer", "messages": [{"role": "user", "content": "a" * 1_100_000}]}
    err = error_of(post(gateway, "/v1/chat/completions", key, json=big), 413)
    assert err["code"] == "request_too_large"


def test_empty_budget_under_reject_policy_is_429_insufficient_quota(gateway) -> None:
    tid, key = gateway.new_tenant(limit=0.0001, policy="reject")
    body = {"model": "citer", "messages": MSG, "max_tokens": 4}
    r = post(gateway, "/v1/chat/completions", key, json=body)
    err = error_of(r, 429)
    assert err["type"] == err["code"] == "insufficient_quota"
    assert r.headers["x-should-retry"] == "false"
    assert tid in err["message"] and "resets at" in err["message"]
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key)  # retries honour the header
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**body)
    assert gateway.usage(tid)["requests"]["rejected"] == 2


def test_tenant_concurrency_limit_is_429_rate_limit(gateway) -> None:
    tid, key = gateway.new_tenant(limit=1000.0, max_concurrent=1)
    headers = {"Authorization": f"Bearer {key}"}
    held = {**long_request(gateway, key, 300), "stream": True}  # outlives the 2nd request
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as c:
        with c.stream("POST", "/v1/completions", json=held) as first:
            assert first.status_code == 200
            r = c.post("/v1/completions", json={**held, "stream": False})
            err = error_of(r, 429)
            assert err["code"] == "rate_limit_exceeded" and "max_concurrent=1" in err["message"]
            assert r.headers["x-should-retry"] == "true" and "retry-after" in r.headers
            first.read()
    assert gateway.usage(tid)["active_requests"] == 0
