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
same prefix, each named in its module: `<prefix>:presence:*` (hub/redispresence.py),
`<prefix>:stats:*` (hub/nodestats.py) and `<prefix>:ratelimit:*` (auth/sharedlimit.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys", "PUBLISH_LUA", "POSITION_LUA"]


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
