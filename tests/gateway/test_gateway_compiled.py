"""A gateway whose SLM and LLM are compiled at start-up (CITER_SLM_COMPILE,
CITER_LLM_COMPILE) answers the official openai client exactly as the uncompiled
session gateway does: the same text, tokens and usage for routed, LLM-only and
sampled requests, streamed or not, from the scheduler's thread."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from live_gateway import GatewayProcess

PROMPTS = ["What is 17 + 25?", "Name a colour.", "Count to five."]


@pytest.fixture(scope="module")
def compiled_gateway(gateway_models, tmp_path_factory) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("gw-compiled") / "gateway.log"
    gw = GatewayProcess(
        *gateway_models, log, CITER_MAX_BATCH="8", CITER_SLM_COMPILE="true",
        CITER_LLM_COMPILE="true",
    )  # fmt: skip
    yield gw
    gw.stop()


def _client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.new_tenant()[1], max_retries=0)


def _answers(client: openai.OpenAI, model: str, **kw: object) -> list[tuple[str, int, int]]:
    out = []
    for p in PROMPTS:
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": p}], max_tokens=48, **kw
        )
        assert r.usage is not None
        out.append((r.choices[0].message.content or "", r.usage.completion_tokens,
                    r.usage.prompt_tokens))  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("model", "sampling"),
    [
        ("citer", {"temperature": 0}),
        ("llm", {"temperature": 0}),
        ("citer", {"temperature": 1.0, "seed": 7}),
    ],  # fmt: skip
)
def test_compiled_models_answer_as_the_uncompiled_ones(
    compiled_gateway, gateway, model: str, sampling: dict
) -> None:
    got = _answers(_client(compiled_gateway), model, **sampling)
    assert got == _answers(_client(gateway), model, **sampling)
    assert all(n > 0 for _, n, _ in got)


def test_a_compiled_gateway_streams(compiled_gateway) -> None:
    client = _client(compiled_gateway)
    whole = client.chat.completions.create(
        model="citer", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=32,
        temperature=0,
    )  # fmt: skip
    parts = client.chat.completions.create(
        model="citer", messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=32,
        temperature=0, stream=True,
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in parts if c.choices)
    assert text == whole.choices[0].message.content and text
