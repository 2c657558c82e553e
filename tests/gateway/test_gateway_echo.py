"""``echo`` on ``/v1/completions``: the prompt back before the completion, and with
``logprobs`` its tokens' log-probs from the model that scores them (vLLM's and OpenAI's
shape: the first prompt token's entry is null), streaming and not, ``max_tokens`` 0."""

from __future__ import annotations

import json
import math

import httpx
import openai
import pytest
import torch
from test_gateway_logprobs import _model

PROMPT = "add 12 and 30"


@pytest.fixture(scope="module")
def client(gateway) -> openai.OpenAI:
    key = gateway.new_tenant(limit=1e6)[1]
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def tok(gateway_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gateway_models[0])


def reference(path, ids: list[int]) -> torch.Tensor:
    """[len(ids) - 1, vocab]: row i is the distribution of token i + 1."""
    with torch.inference_mode():
        return torch.log_softmax(_model(path)(torch.tensor([ids])).logits[0, :-1].float(), -1)


@pytest.mark.parametrize("model", ["slm", "llm"])
def test_echo_scores_the_prompt_with_the_named_model(client, tok, gateway_models, model) -> None:
    r = client.completions.create(model=model, prompt=PROMPT, max_tokens=0, echo=True,
                                  logprobs=3, temperature=0)  # fmt: skip
    (choice,) = r.choices
    ids = tok.encode(PROMPT)
    assert choice.text == PROMPT and choice.finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(ids), 0)
    lp = choice.logprobs
    assert lp.tokens == [tok.decode([t]) for t in ids]
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    ref = reference(gateway_models[model == "llm"], ids)
    for i, t in enumerate(ids[1:]):
        assert lp.token_logprobs[i + 1] == pytest.approx(float(ref[i, t]), abs=1e-4)
        top = lp.top_logprobs[i + 1]
        want = {tok.decode([k]) for k in ref[i].topk(3).indices.tolist()}
        assert want <= set(top) and tok.decode([t]) in top  # k best plus the prompt's own
    assert lp.text_offset == [sum(len(x) for x in lp.tokens[:i]) for i in range(len(ids))]


def test_citer_scores_each_prompt_position_with_one_of_the_models(
    client, tok, gateway_models
) -> None:
    ids = tok.encode(PROMPT)
    ref = {m: reference(gateway_models[m == "llm"], ids) for m in ("slm", "llm")}

    def scored(threshold: float) -> list[float]:
        r = client.completions.create(
            model="citer",
            prompt=PROMPT,
            max_tokens=0,
            echo=True,
            logprobs=0,
            extra_body={"routing": {"threshold": threshold}},
        )
        return r.choices[0].logprobs.token_logprobs[1:]  # fmt: skip

    for thr, model in ((1e9, "slm"), (-1e9, "llm")):  # nothing / everything routed
        want = [float(ref[model][i, t]) for i, t in enumerate(ids[1:])]
        assert scored(thr) == pytest.approx(want, abs=1e-4)
    for i, (x, t) in enumerate(zip(scored(0.5), ids[1:], strict=True)):
        assert any(math.isclose(x, float(ref[m][i, t]), abs_tol=1e-4) for m in ref)


def test_echo_puts_the_prompt_before_the_completion(client) -> None:
    plain = client.completions.create(model="llm", prompt=PROMPT, max_tokens=6, temperature=0,
                                      logprobs=2)  # fmt: skip
    echoed = client.completions.create(model="llm", prompt=PROMPT, max_tokens=6, temperature=0,
                                       logprobs=2, echo=True)  # fmt: skip
    a, b = plain.choices[0], echoed.choices[0]
    assert b.text == PROMPT + a.text
    n = echoed.usage.prompt_tokens
    assert b.logprobs.tokens[n:] == a.logprobs.tokens
    assert b.logprobs.token_logprobs[n:] == pytest.approx(a.logprobs.token_logprobs, abs=1e-5)
    assert b.logprobs.text_offset[n] == len("".join(b.logprobs.tokens[:n]))
    text_only = client.completions.create(model="slm", prompt=PROMPT, max_tokens=4,
                                          temperature=0, echo=True)  # fmt: skip
    assert text_only.choices[0].text.startswith(PROMPT) and text_only.choices[0].logprobs is None


def test_streamed_echo_sends_the_prompt_first(client) -> None:
    whole = client.completions.create(model="citer", prompt=PROMPT, max_tokens=8, temperature=0,
                                      logprobs=1, echo=True).choices[0]  # fmt: skip
    for logprobs in (1, None):
        chunks = list(client.completions.create(model="citer", prompt=PROMPT, max_tokens=8,
                                                temperature=0, logprobs=logprobs, echo=True,
                                                stream=True))  # fmt: skip
        first = chunks[0].choices[0]
        assert first.text == PROMPT
        assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.text
        if logprobs:
            toks = [t for c in chunks if c.choices and c.choices[0].logprobs
                    for t in c.choices[0].logprobs.tokens]  # fmt: skip
            assert first.logprobs.token_logprobs[0] is None
            assert toks == whole.logprobs.tokens


def test_max_tokens_zero_needs_echo_and_token_prompts_are_decoded(gateway, client, tok) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="slm", prompt=PROMPT, max_tokens=0)
    assert e.value.body["param"] == "max_tokens"
    ids = tok.encode(PROMPT)
    r = client.completions.create(model="slm", prompt=ids, max_tokens=0, echo=True, logprobs=0)
    assert r.choices[0].text == tok.decode(ids)
    assert len(r.choices[0].logprobs.tokens) == len(ids)
    raw = httpx.post(
        f"{gateway.url}/v1/completions",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={
            "model": "slm",
            "prompt": ids,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
            "stream": True,
        },
        timeout=60,
    )
    events = [json.loads(x[6:]) for x in raw.text.splitlines() if x.startswith("data: {")]
    assert events[0]["choices"][0]["logprobs"]["token_logprobs"][0] is None
    assert events[-1]["choices"][0]["finish_reason"] == "length"  # fmt: skip
