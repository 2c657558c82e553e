"""The load clients' shared pieces: the routing-policy mix and SSE parsing."""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.common import chat_body, content_of, policy_mix, prompts, sse_data


def models(calibrated: bool) -> list[dict[str, Any]]:
    routing = {"policy": "citer", "calibrated": calibrated}
    plain = [{"id": "slm"}, {"id": "llm"}, {"id": "speculative"}]
    return [{"id": "citer", "citer": {"routing": routing}}, *plain]


def test_policy_mix_asks_for_a_target_share_only_with_a_calibrated_router() -> None:
    calibrated = {p.name: p for p in policy_mix(models(True))}
    plain = {p.name for p in policy_mix(models(False))}
    assert "citer:0.25" in calibrated and "citer:0.25" not in plain
    assert {"citer", "slm", "llm", "speculative"} <= plain
    assert "speculative" not in {p.name for p in policy_mix(models(False)[:3])}
    assert any(p.routing and "threshold" in p.routing for p in calibrated.values())
    with pytest.raises(ValueError, match="citer"):
        policy_mix([{"id": "gpt-4o"}])


def test_chat_body_streams_with_usage_and_routing() -> None:
    mix = {p.name: p for p in policy_mix(models(False))}
    msgs = prompts(3)[1]
    body = chat_body(mix["citer max_llm_tokens=4"], msgs, 16)
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    assert body["routing"]["max_llm_tokens"] == 4 and body["messages"] == msgs
    assert "routing" not in chat_body(mix["slm"], msgs, 16)


def test_sse_lines() -> None:
    line = b'data: {"choices": [{"delta": {"content": "4"}}, {"delta": {"content": "2"}}]}'
    assert content_of(sse_data(line)) == "42"
    assert sse_data("data: [DONE]") is None and sse_data("") is None
    assert content_of(sse_data('data: {"choices": [], "usage": {"cost": 1}}')) == ""
