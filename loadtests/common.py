"""What the load and soak clients share: prompts, the routing-policy mix, SSE parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Policy:
    """One way of asking for routing: a model name plus an optional ``routing`` body field."""

    name: str  # the Locust stats name, e.g. "citer:0.25"
    model: str
    routing: dict[str, Any] | None = None


def policy_mix(models: list[dict[str, Any]]) -> list[Policy]:
    """The mix for a gateway's ``/v1/models`` data: the router at its default, a
    threshold, an LLM-token cap with per-token sources, each model alone, speculative
    decoding where served, and a target share by model name when the router card is
    calibrated (else that is a 400)."""
    citer = next((m for m in models if m["id"] == "citer"), None)
    if citer is None:
        raise ValueError("the gateway serves no 'citer' model: is this a citer gateway?")
    mix = [
        Policy("citer", "citer"),
        Policy("citer threshold=0.5", "citer", {"threshold": 0.5}),
        Policy("citer max_llm_tokens=4", "citer", {"max_llm_tokens": 4, "return_sources": True}),
        Policy("slm", "slm"),
        Policy("llm", "llm"),
    ]
    if citer["citer"]["routing"].get("calibrated"):
        mix.append(Policy("citer:0.25", "citer:0.25"))
    if any(m["id"] == "speculative" for m in models):  # the LLM's tokens, SLM-drafted
        mix.append(Policy("speculative", "speculative"))
    return mix


def prompts(n: int) -> list[list[dict[str, str]]]:
    """Chat messages of the first ``n`` test-split items (all four task families)."""
    from tasks.splits import load_split

    return [item.messages for item in load_split("test", n)]


def chat_body(policy: Policy, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    """A streamed chat request whose last chunk carries usage (with the settled cost)."""
    body: dict[str, Any] = {
        "model": policy.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if policy.routing is not None:
        body["routing"] = policy.routing
    return body


def sse_data(line: str | bytes) -> dict[str, Any] | None:
    """The JSON of one ``data:`` line; None for blank lines, comments and ``[DONE]``."""
    if isinstance(line, bytes):
        line = line.decode()
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    return None if payload == "[DONE]" else json.loads(payload)


def content_of(chunk: dict[str, Any]) -> str:
    """Text of a chat chunk's delta ("" for the opening, finish and usage chunks)."""
    return "".join(c["delta"].get("content") or "" for c in chunk.get("choices", []))


async def public_metrics(client: httpx.AsyncClient) -> str:
    """/metrics without the client's bearer key: the gateway refuses a tenant key there
    and answers the series summed over tenants to a scrape without one."""
    req = client.build_request("GET", "/metrics")
    req.headers.pop("Authorization", None)
    return (await client.send(req)).text
