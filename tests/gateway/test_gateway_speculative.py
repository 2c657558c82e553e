"""The ``speculative`` model through the official openai client: the LLM's own answer (the
``llm`` model's tokens, greedy and seeded, streamed or not, alone or concurrently), drafted
by the SLM and verified by the LLM; listed, labelled in the metrics, and refusing the
routing knobs that only the ``citer`` model takes."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from live_gateway import metric_value

SUMS = ((12, 30), (7, 8), (40, 2))
MSGS = [[{"role": "user", "content": f"what is {a} + {b}?"}] for a, b in SUMS]


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.0, "seed": 3}])
def test_speculative_answers_as_the_llm(client: openai.OpenAI, sampling: dict) -> None:
    kw = {"messages": MSGS[0], "max_tokens": 24, **sampling}
    llm = client.chat.completions.create(model="llm", **kw)
    spec = client.chat.completions.create(model="speculative", **kw)
    assert spec.choices[0].message.content == llm.choices[0].message.content
    assert spec.model == "speculative" and spec.model_extra["routing"]["policy"] == "speculative"
    usage = spec.usage.model_extra
    assert spec.usage.completion_tokens == llm.usage.completion_tokens
    assert usage["llm_tokens"] == spec.usage.completion_tokens and usage["slm_tokens"] == 0
    chunks = list(client.chat.completions.create(model="speculative", stream=True, **kw))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == llm.choices[0].message.content


def test_speculative_concurrent_requests_equal_their_llm_answers(gateway, key) -> None:
    aclient = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)

    async def answers(model: str) -> list[str | None]:
        calls = [
            aclient.chat.completions.create(model=model, messages=m, max_tokens=20, temperature=0)
            for m in MSGS
        ]
        return [r.choices[0].message.content for r in await asyncio.gather(*calls)]

    async def both() -> tuple[list, list]:
        return await answers("speculative"), await answers("llm")

    spec, llm = asyncio.run(both())
    assert spec == llm


def test_speculative_is_listed_labelled_and_takes_no_routing(gateway, client) -> None:
    card = client.models.retrieve("speculative").model_extra["citer"]
    assert card["routing"]["policy"] == "speculative" and card["draft_model"]
    client.chat.completions.create(model="speculative", messages=MSGS[1], max_tokens=4)
    text = httpx.get(gateway.url + "/metrics").text
    running = metric_value(text, "vllm:num_requests_running", model_name="speculative")
    assert running == 0.0  # the label exists, and nothing is left running
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="speculative:0.2", messages=MSGS[1], max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="citer model"):
        client.chat.completions.create(
            model="speculative", messages=MSGS[1], max_tokens=4,
            extra_body={"routing": {"threshold": 0.3}},
        )  # fmt: skip


def test_drafting_limit_is_timed_at_start_up_unless_set(gateway, client, redis_gateway) -> None:
    """CITER_SPECULATIVE_MAX_BATCH: auto (the default) times drafting against the LLM
    alone at 1, 2, 4, ... sequences and shows the rows; the limit then follows the share
    of drafts the LLM keeps (engines.draft_gate); a number is taken as it is."""
    from engines.spec_probe import ProbeRow, limit_for

    for i in range(2):  # drafts to count, where the probe lets the SLM draft
        client.chat.completions.create(model="speculative", messages=MSGS[i], max_tokens=12)
    drafting = client.models.retrieve("speculative").model_extra["citer"]["drafting"]
    probe = drafting["probe"]
    assert drafting["set_by"] == "probe" and 0 <= probe["max_batch"] <= 8
    rows = probe["rows"]
    assert [r["batch"] for r in rows] == [1, 2, 4, 8][: len(rows)]
    paid = [r["batch"] for r in rows if r["gain"] >= 1]
    assert probe["max_batch"] == max(paid, default=0) and probe["acceptance"] == 0.85
    assert probe["window"] == 8 and probe["reason"]
    share = drafting["acceptance"]
    assert share["assumed"] == 0.85 and 0 <= share["recent_kept"] <= share["recent_checked"]
    if probe["max_batch"] and share["recent_checked"] == 0:
        pytest.fail("the probe let the SLM draft, but no draft was counted")
    live = limit_for([ProbeRow(**r) for r in rows], 8, share["measured"])
    assert drafting["max_batch"] == live
    text = gateway.metrics()
    assert metric_value(text, "citer:speculative_max_batch") == live
    checked = metric_value(text, "citer:speculative_drafts_checked_total")
    assert 0 <= metric_value(text, "citer:speculative_drafts_kept_total") <= checked
    key = redis_gateway.new_tenant(limit=1.0)[1]
    other = openai.OpenAI(base_url=redis_gateway.url + "/v1", api_key=key, max_retries=0)
    set_by = other.models.retrieve("speculative").model_extra["citer"]["drafting"]
    assert set_by["max_batch"] == 4 and set_by["set_by"] == "CITER_SPECULATIVE_MAX_BATCH"
    assert set_by["acceptance"]["assumed"] == 0.85
