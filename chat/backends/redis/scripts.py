"""Every Lua script of the Redis back-end, in one place.

Each runs atomically in Redis, so what it does cannot interleave with another
process's commands. Each is handed every key it touches as ``KEYS`` (built by
:mod:`chat.backends.redis.keys`), and its header says which keys and arguments
it takes. They are run through :mod:`chat.backends.redis.pipeline` (EVALSHA in
pipelines, loaded again when Redis forgot them) or as redis-py scripts.

- :data:`PRESENCE`, :data:`REAP`, :data:`HEARTBEAT` (presence): a name enters or
  leaves a room through a process; a dead process's members leave; a process
  says it is alive.
- :data:`CLAIM`, :data:`REFRESH`, :data:`DROP` (name claims): hold a name for a
  session; hold many again; free one and log its session out everywhere.
"""

from __future__ import annotations

# Shared by presence changes and reaps: one process no longer has ``name`` in
# ``room``, whose presence hash is ``who`` and whose channel is ``channel``.
_DEPART = """
local function depart(who, active, channel, room, name)
  if redis.call('HINCRBY', who, name, -1) <= 0 then
    redis.call('HDEL', who, name)
    if redis.call('HLEN', who) == 0 then redis.call('SREM', active, room) end
    redis.call('PUBLISH', channel, 'p' .. cjson.encode({'leave', name}))
  end
end
"""

# Enter and exit are one script, so a pipeline of them is refused (NOSCRIPT)
# or run as a whole, and a refused one is run again in the same order.
PRESENCE = (
    _DEPART
    + """
-- KEYS: here, who, active, channel  ARGV: 'enter' or 'exit', room, name
local room, name = ARGV[2], ARGV[3]
local entry = room .. '\t' .. name
if ARGV[1] == 'enter' then
  if redis.call('SADD', KEYS[1], entry) == 1 then
    redis.call('SADD', KEYS[3], room)
    if redis.call('HINCRBY', KEYS[2], name, 1) == 1 then
      redis.call('PUBLISH', KEYS[4], 'p' .. cjson.encode({'join', name}))
    end
  end
elseif redis.call('SREM', KEYS[1], entry) == 1 then
  depart(KEYS[2], KEYS[3], KEYS[4], room, name)
end
return 1
"""
)

REAP = (
    _DEPART
    + """
-- KEYS: alive, here, procs, active  ARGV: proc, who prefix, room channel prefix
-- The rooms are known only once the here set is read, so their presence
-- hashes and channels are the prefixes (from keys.py) joined to each room.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local tab = string.find(entry, '\\t', 1, true)
  local room = string.sub(entry, 1, tab - 1)
  depart(ARGV[2] .. room, KEYS[4], ARGV[3] .. room, room, string.sub(entry, tab + 1))
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""
)

HEARTBEAT = """
-- KEYS: alive, procs  ARGV: proc, ttl_ms. Returns 0 if the process had been reaped.
local known = redis.call('SISMEMBER', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return known
"""

CLAIM = """
-- KEYS: name  ARGV: session, ttl_s
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

# The names of many sessions refreshed in one call: each is held again for
# ttl_s by its session, unless another session holds it meanwhile.
REFRESH = """
-- KEYS: names  ARGV: ttl_s, then the session of each name, in order
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if not holder or holder == ARGV[i + 1] then
    redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
  end
end
return 1
"""

DROP = """
-- KEYS: name, ctl  ARGV: session
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', KEYS[2], 'logout ' .. ARGV[1])
return 1
"""

# Every script by name: what tests/backends/test_keys.py checks.
ALL = {
    "presence": PRESENCE,
    "reap": REAP,
    "heartbeat": HEARTBEAT,
    "claim": CLAIM,
    "refresh": REFRESH,
    "drop": DROP,
}
