"""logprobs / top_logprobs through the official openai SDK against a live gateway:
OpenAI's shapes (chat and completions, streaming and not), values from the model
that wrote each token."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import httpx
import pytest
import torch

MSG = [{"role": "user", "content": "add 12 and 30"}]
MIXED = {"routing": {"threshold": 0.6, "return_sources": True}}
ROUTED = {"routing": {"threshold": 0.6}}  # an explicit threshold: who writes depends on the pair


@lru_cache(maxsize=2)
def _model(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


def reference(path: Path, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    """[len(tokens), vocab] log_softmax of a plain forward: row i predicts tokens[i]."""
    with torch.inference_mode():
        logits = _model(path)(torch.tensor([prompt + tokens])).logits[0].float()
    return torch.log_softmax(logits[len(prompt) - 1 : len(prompt) - 1 + len(tokens)], -1)


def visible(tokenizer, sources: list[dict]) -> list[bool]:
    """Which tokens show in the text (special tokens, eos included, do not)."""
    special = set(tokenizer.all_special_ids)
    return [s["token_id"] not in special for s in sources]


@pytest.mark.parametrize("model", ["citer", "llm", "slm"])
def test_chat_logprobs_come_from_the_model_that_wrote_each_token(
    client, gateway_models, model: str
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gateway_models[0])
    routing = MIXED if model == "citer" else {"routing": {"return_sources": True}}
    r = client.chat.completions.create(
        model=model, messages=MSG, max_tokens=16, temperature=0, logprobs=True,
        top_logprobs=3, extra_body=routing,
    )  # fmt: skip
    choice = r.choices[0]
    content, sources = choice.logprobs.content, choice.model_extra["sources"]
    assert len(content) == len(sources) == r.usage.completion_tokens
    if model != "citer":
        assert {s["source"] for s in sources} == {model}
    shown = visible(tok, sources)
    text = b"".join(bytes(e.bytes) for e, v in zip(content, shown, strict=True) if v)
    assert text.decode("utf-8") == choice.message.content  # exact bytes, token by token
    prompt = tok.apply_chat_template(MSG, add_generation_prompt=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    ids = [s["token_id"] for s in sources]
    ref = {m: reference(gateway_models[m == "llm"], prompt, ids) for m in ("slm", "llm")}
    for i, (e, s) in enumerate(zip(content, sources, strict=True)):
        row = ref[s["source"]][i]  # the producing model's distribution at this position
        assert e.logprob == pytest.approx(float(row[s["token_id"]]), abs=1e-4)
        want_lp, want_ids = row.topk(3)
        assert [t.logprob for t in e.top_logprobs] == pytest.approx(want_lp.tolist(), abs=1e-4)
        assert [t.token for t in e.top_logprobs] == [tok.decode([t]) for t in want_ids.tolist()]
        assert e.top_logprobs[0].bytes == e.bytes  # greedy: the token is the most likely


def test_chat_stream_carries_the_same_logprobs(client) -> None:
    kw = {"model": "citer", "messages": MSG, "max_tokens": 12, "temperature": 0,
          "logprobs": True, "top_logprobs": 2, "extra_body": ROUTED}  # fmt: skip
    whole = client.chat.completions.create(**kw).choices[0].logprobs.content
    chunks = list(client.chat.completions.create(**kw, stream=True))
    assert chunks[0].choices[0].logprobs is None and chunks[-1].choices[0].logprobs is None
    streamed = [e for c in chunks[1:-1] for e in c.choices[0].logprobs.content]
    assert all(len(c.choices[0].logprobs.content) == 1 for c in chunks[1:-1])  # one per token
    assert [(e.token, e.bytes) for e in streamed] == [(e.token, e.bytes) for e in whole]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in whole], abs=1e-5)
    assert all(len(e.top_logprobs) == 2 for e in streamed)


def test_completions_logprobs_shape_streaming_and_not(client) -> None:
    kw = {"model": "citer", "prompt": "12+30=", "max_tokens": 10, "temperature": 0,
          "logprobs": 2, "extra_body": ROUTED}  # fmt: skip
    r = client.completions.create(**kw)
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == n
    offsets = [sum(len(t) for t in lp.tokens[:i]) for i in range(n)]
    assert lp.text_offset == offsets
    for token, chosen, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert chosen <= 0.0 and top[token] == pytest.approx(chosen)  # the chosen one is there
        assert len(top) <= 3  # the 2 most likely, plus the chosen one if not among them
        # Keys are token texts: alternatives that each hold part of a UTF-8 character
        # all read U+FFFD and share one key (the likelier one's), as in vLLM's output.
        assert len(top) >= 2 or all("\ufffd" in k for k in top), top
        assert max(top.values()) == pytest.approx(chosen)  # greedy: it is the most likely
    chunks = list(client.completions.create(**kw, stream=True))
    parts = [c.choices[0].logprobs for c in chunks if c.choices and c.choices[0].logprobs]
    assert [t for p in parts for t in p.tokens] == lp.tokens
    assert [o for p in parts for o in p.text_offset] == lp.text_offset  # continues across chunks
    streamed = [x for p in parts for x in p.token_logprobs]
    assert streamed == pytest.approx(lp.token_logprobs, abs=1e-5)
    assert chunks[-1].choices[0].logprobs is None  # the finish chunk


def test_requests_without_logprobs_get_null(client) -> None:
    chat = client.chat.completions.create(model="citer", messages=MSG, max_tokens=3)
    assert chat.choices[0].logprobs is None
    text = client.completions.create(model="slm", prompt="ab", max_tokens=3)
    assert text.choices[0].logprobs is None
    chunks = list(
        client.chat.completions.create(model="slm", messages=MSG, max_tokens=3, stream=True)
    )
    assert all(c.choices[0].logprobs is None for c in chunks)
    zero = client.chat.completions.create(
        model="llm", messages=MSG, max_tokens=3, temperature=0, logprobs=True
    )  # logprobs without top_logprobs: the token's own log-prob, no alternatives
    content = zero.choices[0].logprobs.content
    assert len(content) == zero.usage.completion_tokens
    assert all(e.top_logprobs == [] and e.logprob <= 0.0 for e in content)


@pytest.mark.parametrize(
    ("path", "body", "param", "needle"),
    [
        ("/v1/chat/completions", {"top_logprobs": 2}, "top_logprobs", "logprobs set to true"),
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", "20"),
        ("/v1/completions", {"logprobs": 21}, "logprobs", "20"),
        ("/v1/completions", {"logprobs": -1}, "logprobs", "0"),
    ],
)
def test_logprobs_out_of_range_are_400(gateway, key, path, body, param, needle) -> None:
    base = {"model": "citer", "max_tokens": 2}
    base.update({"messages": MSG} if "chat" in path else {"prompt": "ab"})
    r = httpx.post(
        gateway.url + path, json={**base, **body}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and needle in err["message"]
    assert err["type"] == "invalid_request_error"
