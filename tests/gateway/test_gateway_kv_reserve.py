"""KV memory of a running gateway: CITER_KV_RESERVE_TOKENS allocates each hf engine's
cache at start, and a cache keeps its memory while the gateway idles (the next burst
allocates nothing). The redis gateway of conftest.py runs with 8 x 64 reserved."""

from __future__ import annotations

import json
import time

import openai
from live_gateway import metric_value


def bytes_per_position(model: str) -> int:
    """float32 keys and values of every layer, as the hf engine stores them."""
    c = json.loads(open(f"{model}/config.json").read())
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or c["hidden_size"] // heads
    return c["num_hidden_layers"] * 2 * c.get("num_key_value_heads", heads) * head_dim * 4


def test_reserved_cache_is_allocated_at_start_and_kept_while_idle(
    redis_gateway, gateway_models
) -> None:
    _, key = redis_gateway.new_tenant()
    client = openai.OpenAI(base_url=redis_gateway.url + "/v1", api_key=key, max_retries=0)
    client.chat.completions.create(
        model="citer", messages=[{"role": "user", "content": "2+3"}], max_tokens=4
    )
    for _ in range(50):  # the step thread frees the sequences just after the stream ends
        text = redis_gateway.metrics()
        if metric_value(text, "citer:kv_cache_sequences", model="llm") == 0:
            break
        time.sleep(0.1)
    for name, model in zip(("slm", "llm"), gateway_models, strict=True):
        assert metric_value(text, "citer:kv_cache_sequences", model=name) == 0  # idle
        held = metric_value(text, "citer:kv_cache_bytes", model=name)
        assert held is not None and held >= 8 * 64 * bytes_per_position(str(model)), name
