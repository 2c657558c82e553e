"""Per-tenant requests and tokens per minute (OpenAI's RPM / TPM), atomic in the store.

    take(tenant, rpm, tpm, tokens) -> RateResult
        one fixed 60 s window aligned to the epoch minute; a request counts 1 request
        and its worst case in tokens (prompt + max_tokens, what the budget reserves),
        taken at admission and never refunded; refused (nothing counted) if either
        limit would be passed
    headers(rpm, tpm, result) -> OpenAI's x-ratelimit-* response headers

The embedded store counts under its lock; Redis counts in one Lua script (``RATE``),
so gateways sharing a Redis share the limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_S = 60

# KEYS: requests and tokens counters of this window. ARGV: rpm, tpm (0 = no limit),
# tokens of this request, counter TTL (s). Returns {allowed, requests, tokens} after it.
RATE = """
local r = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm, tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if (rpm > 0 and r + 1 > rpm) or (tpm > 0 and t + n > tpm) then
  return {0, r, t}
end
r = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
t = redis.call('INCRBY', KEYS[2], n)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, r, t}
"""


@dataclass(frozen=True)
class RateResult:
    allowed: bool
    requests: int  # counted in this window (with this request, if allowed)
    tokens: int
    reset_s: float  # seconds until the window ends


def window(now: float) -> tuple[int, float]:
    """(window number, seconds left in it)."""
    w = int(now // WINDOW_S)
    return w, (w + 1) * WINDOW_S - now


def headers(rpm: int | None, tpm: int | None, res: RateResult) -> dict[str, str]:
    reset = f"{math.ceil(res.reset_s)}s"
    out: dict[str, str] = {}
    if rpm is not None:
        out |= {"x-ratelimit-limit-requests": str(rpm),
                "x-ratelimit-remaining-requests": str(max(0, rpm - res.requests)),
                "x-ratelimit-reset-requests": reset}  # fmt: skip
    if tpm is not None:
        out |= {"x-ratelimit-limit-tokens": str(tpm),
                "x-ratelimit-remaining-tokens": str(max(0, tpm - res.tokens)),
                "x-ratelimit-reset-tokens": reset}  # fmt: skip
    return out
