"""Lua scripts of the Redis store: the ledger rules of ``ledger.py``, run atomically.

Every budget script takes the same KEYS (one tenant, one hash slot):
  1 cfg    hash  config (JSON), created_at, limit (micro-units), period_s (0 = never
               resets), policy, max_concurrent (0 = unlimited)
  2 use    hash  period_start, reserved, and the per-period counters of ``ledger.COUNTERS``
  3 holds  hash  reservation id -> micro-units held
  4 exp    zset  reservation id -> expires_at (epoch s)
  5 closed zset  "s:<id>" (settled) / "e:<id>" (expired) -> when; kept ``TOMBSTONE_S``
ARGV[1] is ``now`` (epoch s, from the gateway's clock; replicas need synced clocks)
and ARGV[2] the tombstone retention. Amounts and times travel as the decimal strings
Python sent: Lua turns numbers into strings with 14 significant digits, which would
round micro-unit amounts above 1e14 and shift times by up to 1e-4 s.
Each script returns {status, detail, HGETALL use, live holds, config JSON, created_at,
{first hold id, its expiry} or {}}, or {"missing"} when the tenant does not exist.
"""

from __future__ import annotations

from gateway.tenancy.ledger import COUNTERS

_RESET = ", ".join(f"'{name}', 0" for name in COUNTERS)

PRELUDE = f"""
local cfg, use, holds, exp, closed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
if redis.call('EXISTS', cfg) == 0 then return {{'missing'}} end
local function release(held)  -- HINCRBY rejects '-0'
  if held ~= '0' then redis.call('HINCRBY', use, 'reserved', '-' .. held) end
end
local swept = redis.call('ZRANGEBYSCORE', exp, '-inf', ARGV[1])
for _, rid in ipairs(swept) do
  release(redis.call('HGET', holds, rid) or '0')
  redis.call('HDEL', holds, rid)
  redis.call('ZREM', exp, rid)
  redis.call('ZADD', closed, ARGV[1], 'e:' .. rid)
end
redis.call('ZREMRANGEBYSCORE', closed, '-inf', now - tonumber(ARGV[2]))
local period_s = tonumber(redis.call('HGET', cfg, 'period_s'))
local start = 0
if period_s > 0 then start = math.floor(now / period_s) * period_s end
if tonumber(redis.call('HGET', use, 'period_start') or '-1') ~= start then
  redis.call('HSET', use, 'period_start', start, {_RESET})
end
local function finish(status, detail)
  return {{status, detail, redis.call('HGETALL', use), redis.call('HLEN', holds),
          redis.call('HGET', cfg, 'config'), redis.call('HGET', cfg, 'created_at'),
          redis.call('ZRANGE', exp, 0, 0, 'WITHSCORES')}}
end
"""

# ARGV[3] id, [4] LLM worst case, [5] SLM-only worst case or '', [6] expires_at
_RESERVE = """
local max_concurrent = tonumber(redis.call('HGET', cfg, 'max_concurrent'))
if max_concurrent > 0 and redis.call('HLEN', holds) >= max_concurrent then
  redis.call('HINCRBY', use, 'rejected', 1)
  return finish('busy', '0')
end
local room = tonumber(redis.call('HGET', cfg, 'limit'))
  - tonumber(redis.call('HGET', use, 'spent') or '0')
  - tonumber(redis.call('HGET', use, 'reserved') or '0')
local grant, amount = 'llm', ARGV[4]
if tonumber(ARGV[4]) > room then
  if redis.call('HGET', cfg, 'policy') == 'degrade' and ARGV[5] ~= ''
      and tonumber(ARGV[5]) <= room then
    grant, amount = 'slm', ARGV[5]
    redis.call('HINCRBY', use, 'degraded', 1)
  else
    redis.call('HINCRBY', use, 'rejected', 1)
    return finish('quota', '0')
  end
end
redis.call('HSET', holds, ARGV[3], amount)
redis.call('ZADD', exp, ARGV[6], ARGV[3])
redis.call('HINCRBY', use, 'reserved', amount)
redis.call('HINCRBY', use, 'granted', 1)
return finish(grant, amount)
"""

# ARGV[3] id, [4] actual cost, [5..8] slm_prompt slm_completion llm_prompt llm_completion,
# [9] outcome counter name. Detail: micro-units the hold covered.
_SETTLE = """
local rid = ARGV[3]
local held = redis.call('HGET', holds, rid)
local status = 'settled'
if held then
  redis.call('HDEL', holds, rid)
  redis.call('ZREM', exp, rid)
  release(held)
elseif redis.call('ZSCORE', closed, 'e:' .. rid) then
  redis.call('ZREM', closed, 'e:' .. rid)
  status, held = 'late', '0'
elseif redis.call('ZSCORE', closed, 's:' .. rid) then
  return finish('duplicate', '0')
else
  return finish('unknown', '0')
end
redis.call('ZADD', closed, ARGV[1], 's:' .. rid)
redis.call('HINCRBY', use, 'spent', ARGV[4])
redis.call('HINCRBY', use, 'slm_prompt', ARGV[5])
redis.call('HINCRBY', use, 'slm_completion', ARGV[6])
redis.call('HINCRBY', use, 'llm_prompt', ARGV[7])
redis.call('HINCRBY', use, 'llm_completion', ARGV[8])
redis.call('HINCRBY', use, ARGV[9], 1)
return finish(status, held)
"""

# Sweep only (a janitor or a usage read). Detail: holds expired by this call.
_SWEEP = """
return finish('ok', tostring(#swept))
"""

# ARGV[3] id, [4] new expires_at. Detail: '1' renewed, '0' the hold is gone.
_RENEW = """
if redis.call('HEXISTS', holds, ARGV[3]) == 0 then return finish('ok', '0') end
redis.call('ZADD', exp, ARGV[4], ARGV[3])
return finish('ok', '1')
"""

# ARGV[3..]: ids to expire now, or none for every hold. Detail: holds released.
_RELEASE = """
local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('HKEYS', holds)
end
local n = 0
for _, rid in ipairs(ids) do
  local held = redis.call('HGET', holds, rid)
  if held then
    release(held)
    redis.call('HDEL', holds, rid)
    redis.call('ZREM', exp, rid)
    redis.call('ZADD', closed, ARGV[1], 'e:' .. rid)
    n = n + 1
  end
end
return finish('ok', tostring(n))
"""

RESERVE = PRELUDE + _RESERVE
RENEW = PRELUDE + _RENEW
RELEASE = PRELUDE + _RELEASE
SETTLE = PRELUDE + _SETTLE
SWEEP = PRELUDE + _SWEEP

# KEYS: cfg, tenant set. ARGV: mode ('create' | 'update'), tenant id, created_at,
# then field/value pairs for cfg. Returns 1, or 0 (create: exists) / -1 (update: missing).
PUT_TENANT = """
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[1] == 'create' and exists then return 0 end
if ARGV[1] == 'update' and not exists then return -1 end
if not exists then
  redis.call('HSET', KEYS[1], 'created_at', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
return 1
"""
