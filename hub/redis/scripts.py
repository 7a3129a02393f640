"""Redis key names and the Lua scripts of the Redis broker (the layout of every Redis key).

Every key and the pub/sub channel live under one prefix (`--redis-prefix`), so several
clusters or test runs can share one Redis:

- `<prefix>:bus` - the one pub/sub channel every node listens on; each message is
  `<offset>:<epoch>:<codec frame>` for a logged publication, `::<codec frame>` otherwise.
- `<prefix>:meta:<stream>` - a hash: `e` the stream's epoch, `s` its last offset.
- `<prefix>:log:<stream>` - a Redis Stream, the recovery history: entry id `<offset>-0`,
  fields `d` (the codec frame) and `t` (publish time, ms).
- `<prefix>:seen:<key>` - a logged publication's idempotency key -> its offset.

The broker's keys are named here; the cluster-wide state keeps its own namespaces under the
same prefix, each named in its module: `<prefix>:presence:*` (hub/redis/presence.py),
`<prefix>:stats:*` (hub/redis/stats.py) and `<prefix>:ratelimit:*` (auth/sharedlimit.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Keys", "PUBLISH_LUA", "POSITION_LUA", "PRESENCE_SET", "PRESENCE_HEARTBEAT", "PRESENCE_SWEEP",
    "PRESENCE_EXPIRE", "STATS_PUBLISH", "STATS_READ",
]


@dataclass(frozen=True, slots=True)
class Keys:
    """Names every Redis key and channel of one cluster under its prefix."""

    prefix: str

    @property
    def bus(self) -> str:
        """The pub/sub channel of every publication and control."""
        return f"{self.prefix}:bus"

    def meta(self, stream: str) -> str:
        """The hash holding a stream's epoch and last offset."""
        return f"{self.prefix}:meta:{stream}"

    def log(self, stream: str) -> str:
        """The Redis Stream holding a stream's recent entries."""
        return f"{self.prefix}:log:{stream}"

    def seen(self, key: str) -> str:
        """The idempotency key of one logged publication."""
        return f"{self.prefix}:seen:{key}"


# Numbers, appends and publishes one logged publication in one atomic step: Redis runs a
# script alone, so the order of offsets in a stream is the order of PUBLISH on the bus, and
# every node receives them in that order.
# KEYS: meta hash, history stream, idempotency key.
# ARGV: codec frame, max length, history ttl (s), candidate epoch, bus channel, now (ms),
#       idempotency ttl (s).
# Returns {offset, epoch, 1 if this key was published before (nothing done) else 0}.
PUBLISH_LUA = """
local seen = redis.call('GET', KEYS[3])
if seen then
  return {tonumber(seen), redis.call('HGET', KEYS[1], 'e') or '', 1}
end
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  -- a new stream, or Redis lost it: a new epoch, numbering from 1 again
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('DEL', KEYS[2])
end
local offset = redis.call('HINCRBY', KEYS[1], 's', 1)
local id = string.format('%d', offset)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0', 'd', ARGV[1], 't', ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], id .. ':' .. epoch .. ':' .. ARGV[1])
redis.call('SET', KEYS[3], id, 'EX', ARGV[7])
return {offset, epoch, 0}
"""

# Returns a stream's {epoch, last offset}, creating its epoch when it has none.
# KEYS: meta hash, history stream. ARGV: candidate epoch.
POSITION_LUA = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('DEL', KEYS[2])
end
return {epoch, tonumber(redis.call('HGET', KEYS[1], 's'))}
"""


# -- presence (hub/redis/presence.py) ----------------------------------------------------------
# The Lua steps of presence: each one atomic in Redis, so that when several nodes
# race (two joins, two sweepers, two expiries) exactly one of them announces a change.
#
# Keys under the presence prefix P: `P:node:<node>` (hash `<user id>|<key>` -> this node's
# connections), `P:m:<key>` (hash `c:<user id>` -> connections on every node, `n:<user id>` ->
# name), `P:leaving` (sorted set `<user id>|<key>` -> when the grace ends, ms), `P:nodes`
# (sorted set node -> when its heartbeat expires, ms). Times are Redis's clock (TIME).

# KEYS: node hash, key's members hash, leaving zset. ARGV: field, user id, name, this node's
# count now, leaving member, grace ms. Returns 1 if the user joined the key cluster-wide,
# 2 if their last connection anywhere went (the grace started), else 0.
PRESENCE_SET = """
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
PRESENCE_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""

# KEYS: nodes zset, leaving zset. ARGV: prefix, grace ms. Takes every expired node's counts off
# the cluster counts; users left with none start the grace. Returns the nodes swept.
PRESENCE_SWEEP = """
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
PRESENCE_EXPIRE = """
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


# -- node stats (hub/redis/stats.py) ----------------------------------------------------------

# KEYS: the node's stats key, the nodes zset. ARGV: node id, json, ttl ms.
STATS_PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return 1
"""

# KEYS: the nodes zset. ARGV: the stats key prefix. Returns the live nodes' json entries.
STATS_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')) do
  local value = redis.call('GET', ARGV[1] .. node)
  if value then table.insert(out, value) end
end
return out
"""
