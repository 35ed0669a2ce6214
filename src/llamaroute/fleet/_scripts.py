"""The Lua scripts that keep fleet state atomic on Redis (each runs alone on the server).

Time is always the server's (``TIME``), so the clocks of the processes do not matter. Every
key written gets a TTL. Amounts are integers (budget units, ``_budget.UNIT``), exact in Lua's
doubles up to 2**53.
"""

from __future__ import annotations

__all__ = [
    "ADMIT",
    "MAX_SPENT",
    "PEEK",
    "RATE_ACQUIRE",
    "RATE_CANCEL",
    "RATE_SETTLE",
    "RATE_USAGE",
    "RECORD",
    "RESERVE",
    "SETTLE",
    "SUMS",
]

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The spent total has a generation: a random id set when the total is (re)seeded from the
# ledger, i.e. after Redis lost it. A settlement from an older generation may be in the seed
# already (its record reached the ledger first): it is not added, and the caller raises the
# total to the ledger's instead (MAX_SPENT), which has it.

# KEYS: spent, reservation expiries (zset), reservation amounts (hash), generation
# ARGV: id, amount, budget, reservation ttl ms, seed ('' = none), key ttl s, new generation
# -> {1|0|-1, spent, reserved, generation}: reserved, refused, or the total is unknown (seed).
RESERVE = (
    _NOW
    + """
local spent = redis.call('GET', KEYS[1])
if not spent then
  if ARGV[5] == '' then return {-1, '0', '0', ''} end
  if redis.call('SET', KEYS[1], ARGV[5], 'NX') then redis.call('SET', KEYS[4], ARGV[7]) end
  spent = redis.call('GET', KEYS[1])
end
spent = tonumber(spent)
local generation = redis.call('GET', KEYS[4]) or ''
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(gone) do redis.call('HDEL', KEYS[3], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local reserved = 0
for _, amount in ipairs(redis.call('HVALS', KEYS[3])) do reserved = reserved + tonumber(amount) end
local amount = tonumber(ARGV[2])
local ok = 0
if spent + reserved + amount <= tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  ok = 1
end
local ttl = tonumber(ARGV[6])
for i = 1, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {ok, string.format('%.0f', spent), string.format('%.0f', reserved), generation}
"""
)

# KEYS: spent, reservation expiries, reservation amounts, generation, this settlement's marker
# ARGV: reservation id, cost, hold ref ('' = none), hold ttl ms, marker ttl s, key ttl s,
#       the generation the cost belongs to ('' = unknown: added)
# -> 1 settled, 0 settled before (a replay after a lost answer: nothing is counted twice),
#    2 settled, but from an older generation: the caller raises the total to the ledger's
SETTLE = (
    _NOW
    + """
if not redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[5])) then return 0 end
local held = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local cost = tonumber(ARGV[2])
local result = 1
if redis.call('EXISTS', KEYS[1]) == 0 then
  result = 2  -- the total is gone: the next reservation seeds it from the ledger
elseif ARGV[7] ~= '' and ARGV[7] ~= (redis.call('GET', KEYS[4]) or '') then
  result = 2
elseif cost > 0 then
  redis.call('INCRBY', KEYS[1], cost)
end
if ARGV[3] ~= '' and held then
  local rest = tonumber(held) - cost
  if rest > 0 then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
    redis.call('HSET', KEYS[3], ARGV[3], string.format('%.0f', rest))
  end
end
local ttl = tonumber(ARGV[6])
for i = 1, 4 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return result
"""
)

# KEYS: spent, reservation expiries, reservation amounts
# -> {spent ('' if unknown), what live reservations hold}: remaining() in one round trip
SUMS = (
    _NOW
    + """
local spent = redis.call('GET', KEYS[1]) or ''
local reserved = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')) do
  local amount = redis.call('HGET', KEYS[3], id)
  if amount then reserved = reserved + tonumber(amount) end
end
return {spent, string.format('%.0f', reserved)}
"""
)

# KEYS: spent. ARGV: the ledger's total (units). Raises the total to it, never lowers it.
MAX_SPENT = """
local spent = redis.call('GET', KEYS[1])
if spent and tonumber(spent) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
return 1
"""

# A breaker is a hash: state ('open' or absent), opened_at, failures (consecutive),
# times_opened, last_failure (ms), and the window's buckets b<slot>n / b<slot>o / b<slot>f
# (bucket number, outcomes, failures), as routing/_breakers.py keeps them in memory.
# Its probe is a separate key, set NX with a TTL: one probe fleet-wide.

# KEYS: breaker, probe, breaker, probe, ...   ARGV: cooldown ms, probe ttl ms, token
# -> 1 admitted (any probe needed is now held by `token`), 0 refused
ADMIT = (
    _NOW
    + """
local cooldown = tonumber(ARGV[1])
local probes = {}
for i = 1, #KEYS, 2 do
  local state = redis.call('HMGET', KEYS[i], 'state', 'opened_at')
  if state[1] == 'open' then
    if now - tonumber(state[2]) < cooldown then return 0 end
    if redis.call('EXISTS', KEYS[i + 1]) == 1 then return 0 end
    probes[#probes + 1] = KEYS[i + 1]
  end
end
for _, probe in ipairs(probes) do redis.call('SET', probe, ARGV[3], 'PX', tonumber(ARGV[2])) end
return 1
"""
)

# KEYS: breaker, probe, ... (pairs)   ARGV: cooldown ms
# -> per pair: {admits (1/0), last_failure ms or -1}
PEEK = (
    _NOW
    + """
local out = {}
for i = 1, #KEYS, 2 do
  local state = redis.call('HMGET', KEYS[i], 'state', 'opened_at', 'last_failure')
  local admits = 1
  if state[1] == 'open' then
    if now - tonumber(state[2]) < tonumber(ARGV[1]) or redis.call('EXISTS', KEYS[i + 1]) == 1 then
      admits = 0
    end
  end
  out[#out + 1] = admits
  out[#out + 1] = state[3] or '-1'
end
return out
"""
)

# KEYS: breaker, probe, ... (pairs), then the index of breakers (zset)
# ARGV: cooldown ms, window ms, buckets, min_calls, failure_rate, in-a-row (0: off),
#       token, key ttl s, then one action per pair: ok | fail | answered | release
# -> for each pair, the state after: 'open' or 'closed'
RECORD = (
    _NOW
    + """
local cooldown, window, buckets = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local min_calls, rate, in_a_row = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local token, ttl = ARGV[7], tonumber(ARGV[8])
local bucket = math.floor(now * buckets / window)
local index = KEYS[#KEYS]

local function count(h, failed)
  local f = 'b' .. (bucket % buckets)
  if tonumber(redis.call('HGET', h, f .. 'n')) ~= bucket then
    redis.call('HSET', h, f .. 'n', bucket, f .. 'o', 0, f .. 'f', 0)
  end
  redis.call('HINCRBY', h, f .. 'o', 1)
  if failed then redis.call('HINCRBY', h, f .. 'f', 1) end
end

local function forget(h)
  for s = 0, buckets - 1 do
    redis.call('HDEL', h, 'b' .. s .. 'n', 'b' .. s .. 'o', 'b' .. s .. 'f')
  end
end

local function open(h, probe)
  redis.call('HSET', h, 'state', 'open', 'opened_at', now)
  redis.call('HINCRBY', h, 'times_opened', 1)
  forget(h)
  redis.call('DEL', probe)
end

local function close(h, probe)
  redis.call('HDEL', h, 'state', 'opened_at')
  redis.call('HSET', h, 'failures', 0)
  redis.call('DEL', probe)
end

local function release(probe)
  if redis.call('GET', probe) == token then redis.call('DEL', probe) end
end

local out = {}
for i = 1, #KEYS - 1, 2 do
  local h, probe = KEYS[i], KEYS[i + 1]
  local action = ARGV[8 + (i + 1) / 2]
  local state = redis.call('HMGET', h, 'state', 'opened_at')
  local is_open = state[1] == 'open'
  local half_open = is_open and now - tonumber(state[2]) >= cooldown
  if action == 'ok' then
    count(h, false)
    redis.call('HSET', h, 'failures', 0)
    if is_open or redis.call('EXISTS', probe) == 1 then close(h, probe) end
  elseif action == 'answered' then
    count(h, false)
    release(probe)
    if half_open then close(h, probe) end
  elseif action == 'release' then
    release(probe)
  else -- fail
    redis.call('HSET', h, 'last_failure', now)
    redis.call('DEL', probe)
    count(h, true)
    local failures = redis.call('HINCRBY', h, 'failures', 1)
    if half_open then
      open(h, probe)
    elseif not is_open then
      local outcomes, failed = 0, 0
      local oldest = bucket - buckets + 1
      for s = 0, buckets - 1 do
        local slot = redis.call('HMGET', h, 'b' .. s .. 'n', 'b' .. s .. 'o', 'b' .. s .. 'f')
        if slot[1] and tonumber(slot[1]) >= oldest then
          outcomes = outcomes + tonumber(slot[2])
          failed = failed + tonumber(slot[3])
        end
      end
      if (outcomes >= min_calls and failed >= rate * outcomes)
          or (in_a_row > 0 and failures >= in_a_row) then
        open(h, probe)
      end
    end
  end
  if action ~= 'release' then
    redis.call('EXPIRE', h, ttl)
    redis.call('ZADD', index, now, h)
  end
  out[#out + 1] = redis.call('HGET', h, 'state') or 'closed'
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl * 1000)
redis.call('EXPIRE', index, ttl)
return out
"""
)

# A deployment's rate limits: one sliding window of its admitted requests, a sorted set
# (member: the hold's id, score: when it was admitted, ms), and their tokens, a hash (hold id ->
# tokens, plus '=sum', their total; no hold id starts with '='). Both expire a second after
# the window, so a deployment left alone leaves nothing behind.

# (KEYS: window, tokens. ARGV[4]: window ms.) Drops the holds that have left the window.
_TRIM = """
local window = tonumber(ARGV[4])
local cutoff = now - window
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #gone > 0 then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    local freed = 0
    for _, id in ipairs(gone) do
      local held = redis.call('HGET', KEYS[2], id)
      if held then
        freed = freed + tonumber(held)
        redis.call('HDEL', KEYS[2], id)
      end
    end
    if freed ~= 0 then redis.call('HINCRBY', KEYS[2], '=sum', -freed) end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end
"""

# KEYS: window, tokens. ARGV: rpm ('' = none), tpm ('' = none), tokens, window ms, hold id
# -> {1, 0, ''} admitted (the hold is counted), or {0, ms until it would fit, 'rpm' | 'tpm'}
RATE_ACQUIRE = (
    _NOW
    + _TRIM
    + """
local tokens = tonumber(ARGV[3])
if ARGV[1] ~= '' then
  local rpm, count = tonumber(ARGV[1]), redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    -- Free when the request that makes the count one too many leaves the window.
    local oldest = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now, 'rpm'}
  end
end
if ARGV[2] ~= '' then
  local over = tonumber(redis.call('HGET', KEYS[2], '=sum') or '0') + tokens - tonumber(ARGV[2])
  if over > 0 then
    -- Free when enough of the oldest holds' tokens have left the window.
    local holds = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    for i = 1, #holds, 2 do
      over = over - tonumber(redis.call('HGET', KEYS[2], holds[i]) or '0')
      if over <= 0 then return {0, tonumber(holds[i + 1]) + window - now, 'tpm'} end
    end
    return {0, window, 'tpm'}
  end
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
if tokens > 0 then
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[3])
  redis.call('HINCRBY', KEYS[2], '=sum', ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], window + 1000)
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], window + 1000) end
return {1, 0, ''}
"""
)

# KEYS: window, tokens. ARGV: hold id, the tokens it really used, window ms
# -> 1 corrected, 0 the hold has left the window (nothing to correct)
RATE_SETTLE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], '=sum', tonumber(ARGV[2]) - held)
local ttl = tonumber(ARGV[3]) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

# KEYS: window, tokens. ARGV: -, -, -, window ms -> {requests, tokens} in the window now
RATE_USAGE = (
    _NOW
    + _TRIM
    + """
return {redis.call('ZCARD', KEYS[1]), tonumber(redis.call('HGET', KEYS[2], '=sum') or '0')}
"""
)

# KEYS: window, tokens. ARGV: hold id -> 1 taken back, 0 not counted (any more)
RATE_CANCEL = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HINCRBY', KEYS[2], '=sum', -tonumber(held))
end
return 1
"""
