"""The Lua steps of hub.redispresence: each one atomic in Redis, so that when several nodes
race (two joins, two sweepers, two expiries) exactly one of them announces a change.

Keys under the presence prefix P: `P:node:<node>` (hash `<user id>|<key>` -> this node's
connections), `P:m:<key>` (hash `c:<user id>` -> connections on every node, `n:<user id>` ->
name), `P:leaving` (sorted set `<user id>|<key>` -> when the grace ends, ms), `P:nodes`
(sorted set node -> when its heartbeat expires, ms). Times are Redis's clock (TIME).
"""

__all__ = ["SET", "HEARTBEAT", "SWEEP", "EXPIRE"]

# KEYS: node hash, key's members hash, leaving zset. ARGV: field, user id, name, this node's
# count now, leaving member, grace ms. Returns 1 if the user joined the key cluster-wide,
# 2 if their last connection anywhere went (the grace started), else 0.
SET = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local new = tonumber(ARGV[4])
if new == old then return 0 end
if new > 0 then redis.call('HSET', KEYS[1], ARGV[1], new)
else redis.call('HDEL', KEYS[1], ARGV[1]) end
local count = redis.call('HINCRBY', KEYS[2], 'c:' .. ARGV[2], new - old)
if new > old then
  redis.call('HSET', KEYS[2], 'n:' .. ARGV[2], ARGV[3])
  if count == new - old then
    if redis.call('ZREM', KEYS[3], ARGV[5]) == 1 then return 0 end
    return 1
  end
  return 0
end
if count <= 0 then
  redis.call('HSET', KEYS[2], 'c:' .. ARGV[2], 0)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[5])
  return 2
end
return 0
"""

# KEYS: nodes zset. ARGV: node id, ttl ms. Returns 1 if the node was not registered (new, or
# swept while it could not reach Redis).
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""

# KEYS: nodes zset, leaving zset. ARGV: prefix, grace ms. Takes every expired node's counts off
# the cluster counts; users left with none start the grace. Returns the nodes swept.
SWEEP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  local hash = ARGV[1] .. 'node:' .. node
  local entries = redis.call('HGETALL', hash)
  for i = 1, #entries, 2 do
    local field, n = entries[i], tonumber(entries[i + 1])
    local sep = string.find(field, '|', 1, true)
    local uid, key = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
    local members = ARGV[1] .. 'm:' .. key
    local count = redis.call('HINCRBY', members, 'c:' .. uid, -n)
    if count <= 0 then
      redis.call('HSET', members, 'c:' .. uid, 0)
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), field)
    end
  end
  redis.call('DEL', hash)
end
return dead
"""

# KEYS: leaving zset. ARGV: prefix. Removes users whose grace is over and who have no
# connection anywhere; returns them as a flat list key, user id, name.
EXPIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)
local out = {}
for _, field in ipairs(due) do
  redis.call('ZREM', KEYS[1], field)
  local sep = string.find(field, '|', 1, true)
  local uid, key = string.sub(field, 1, sep - 1), string.sub(field, sep + 1)
  local members = ARGV[1] .. 'm:' .. key
  local count = tonumber(redis.call('HGET', members, 'c:' .. uid) or '0')
  if count <= 0 then
    local name = redis.call('HGET', members, 'n:' .. uid) or ''
    redis.call('HDEL', members, 'c:' .. uid, 'n:' .. uid)
    table.insert(out, key)
    table.insert(out, uid)
    table.insert(out, name)
  end
end
return out
"""
