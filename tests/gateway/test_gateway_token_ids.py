"""``/v1/completions`` as a token-id LLM for another gateway (the remote engine's wire):
vLLM's ``return_token_ids``, ``return_tokens_as_token_ids`` and ``top_k``, and the
model cards a remote engine reads (``owned_by``, ``max_model_len``)."""

from __future__ import annotations

import json

import httpx
import pytest

PROMPT = [5, 9, 14, 3, 27, 8]  # token ids (valid in both the tiny and the demo vocabulary)


@pytest.fixture(scope="module")
def post(gateway):
    key = gateway.new_tenant(limit=1e6)[1]
    headers = {"Authorization": f"Bearer {key}"}

    def _post(**body) -> httpx.Response:
        body = {"model": "llm", "prompt": PROMPT, "max_tokens": 10, "temperature": 0, **body}
        return httpx.post(f"{gateway.url}/v1/completions", json=body, headers=headers, timeout=60)

    _post.headers = headers  # type: ignore[attr-defined]
    return _post


def test_return_token_ids_gives_the_prompt_and_completion_ids(post, gateway_models) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gateway_models[0])
    r = post(return_token_ids=True)
    assert r.status_code == 200, r.text
    (choice,) = r.json()["choices"]
    ids = choice["token_ids"]
    assert choice["prompt_token_ids"] == PROMPT
    assert len(ids) == r.json()["usage"]["completion_tokens"] >= 1
    assert tok.decode(ids, skip_special_tokens=True) == choice["text"]
    plain = post().json()["choices"][0]
    assert plain["text"] == choice["text"] and "token_ids" not in plain  # only when asked


def test_streamed_token_ids_add_up_to_the_whole_answer(gateway, post) -> None:
    whole = post(return_token_ids=True).json()["choices"][0]
    body = {"model": "llm", "prompt": PROMPT, "max_tokens": 10, "temperature": 0,
            "stream": True, "return_token_ids": True}  # fmt: skip
    with httpx.stream("POST", f"{gateway.url}/v1/completions", json=body,
                      headers=post.headers, timeout=60) as r:  # fmt: skip
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: {")]
    chunks = [json.loads(line)["choices"][0] for line in lines]
    assert chunks[0]["prompt_token_ids"] == PROMPT
    assert all("prompt_token_ids" not in c for c in chunks[1:])
    assert [t for c in chunks for t in c.get("token_ids", [])] == whole["token_ids"]


def test_log_prob_tokens_as_token_ids(post) -> None:
    r = post(return_token_ids=True, logprobs=2, return_tokens_as_token_ids=True)
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    assert lp["tokens"] == [f"token_id:{t}" for t in choice["token_ids"]]
    assert all(k.startswith("token_id:") for top in lp["top_logprobs"] for k in top)
    named = post(logprobs=2).json()["choices"][0]["logprobs"]
    assert named["token_logprobs"] == lp["token_logprobs"]
    assert not any(t.startswith("token_id:") for t in named["tokens"])


def test_top_k_is_honoured(post) -> None:
    greedy = post(return_token_ids=True).json()["choices"][0]["token_ids"]
    sampled = {"temperature": 1.5, "seed": 3, "return_token_ids": True, "max_tokens": 10}
    assert post(top_k=1, **sampled).json()["choices"][0]["token_ids"] == greedy
    free = post(**sampled).json()["choices"][0]["token_ids"]
    assert post(top_k=-1, **sampled).json()["choices"][0]["token_ids"] == free  # -1 = off
    assert free != greedy  # hot sampling really differs, so top_k=1 did something
    bad = post(top_k=-2)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "top_k"


def test_model_cards_say_who_samples_and_the_context(gateway) -> None:
    _, key = gateway.new_tenant()
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{gateway.url}/v1/models").status_code == 401  # behind the key
    cards = httpx.get(f"{gateway.url}/v1/models", headers=auth).json()["data"]
    assert {c["owned_by"] for c in cards} == {"citer"}  # position-keyed seeded streams
    assert len({c["max_model_len"] for c in cards}) == 1 and cards[0]["max_model_len"] > 8
