"""The Lua scripts of the Redis queue (``redisqueue``): each one atomic step, with its contract.

Every script runs atomically by ``EVALSHA`` (one round trip; after a server
restart flushed the script cache, ``NOSCRIPT`` makes the client load it and
send again), so no other client sees a step half done. The contract of
every script:

- **KEYS**: the queue's nine keys, the client thread's reply record, and,
  for a ``Script`` with ``policy_keys``, the policy's seven, in the order
  ``rediskeys`` declares. Each script starts with ``rediskeys.lua_keys``,
  which names them (``READY``, ``BODY``, ``DEADLINES[level]`` ...): no
  script numbers a key.
- **ARGV**: the script's own arguments, as its header says; then, when the
  record is given, the request number and how long the record lives (ms).
- **Reply**: ``{replayed, reply}``: ``reply`` as the header's "Returns"
  says, ``replayed`` 1 when it is the recorded reply of an earlier send of
  the same request (``once``). A request numbered below the recorded one is
  refused (``pqlab: stale request``), never run. An error reply is returned
  as it is and not recorded: running the body again gives the same error.
  Without a record (``redis-benchmark``, ``redis-cli``) the body just runs.
- **Bounds**: one call does bounded work, so no call holds the server past
  its ``busy-reply-threshold``: a claim reaps at most ``reap_limit`` leases
  and, under a policy, expires at most ``step_limit`` timed-out requests; a
  drain sweeps and takes at most ``step_limit`` each; a cancel by body
  compares at most ``step_limit`` entries. The dead letters and the expired
  set keep the newest ``keep`` ids each (``keep_newest``).

Each script's source begins with its header, Lua comments naming the
script, then its ``KEYS``, ``ARGV`` and ``Returns`` (the habit of redis-py's
``lock.py``), then the key declarations, then the functions it shares with
other scripts (``KEEP``, ``REAP_FUNCTIONS``, ``ONCE``, ``POLICY``), then its
body. Numbers go to ``redis.call`` as numbers, never concatenated into
strings: Lua prints numbers with 14 digits, Redis converts them exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pqlab.queues.rediskeys import lua_keys


@dataclass(frozen=True)
class Script:
    """One script: its name, its Lua source (header first) and its SHA-1 for ``EVALSHA``."""

    name: str
    source: str
    sha: str
    policy_keys: bool  # called with the policy's keys after the record

    @property
    def header(self) -> list[str]:
        """The comment lines the source begins with."""
        lines = self.source.splitlines()
        return lines[:next(i for i, line in enumerate(lines) if not line.startswith("--"))]


def script(header: str, *parts: str, policy_keys: bool = False) -> Script:
    """A script from its header (``-- NAME: ...``, ``-- KEYS: ...``, ...) and Lua parts."""
    source = header + lua_keys(policy_keys) + "\n".join(parts) + "\n"
    name = header.split(":", 1)[0].removeprefix("-- ")
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest(), policy_keys)


# -- shared functions ------------------------------------------------------------------

# keep_newest(set, keep): called once after adding to the dead letters or the expired
# set: keep the newest ``keep`` ids of such a set; older ones go, with their body,
# origin and deliveries. Each id goes once, so trimming costs at most one removal per
# addition; fields go 1,000 per HDEL (below Lua's stack limit).
KEEP = """\
local function keep_newest(set, keep)
  local excess = redis.call('ZCARD', set) - keep
  if excess <= 0 then return end
  local ids = redis.call('ZRANGE', set, 0, excess - 1)
  for first = 1, #ids, 1000 do
    local last = math.min(first + 999, #ids)
    for _, hash in ipairs({BODY, ORIGIN, DELIVERIES}) do
      redis.call('HDEL', hash, unpack(ids, first, last))
    end
  end
  redis.call('ZREMRANGEBYRANK', set, 0, excess - 1)
end"""

# now_ms() and reap(now, limit, max_deliveries, keep, counted), for claim and reap:
# return expired leases to the ready set with their original score (they keep their
# place), or dead-letter them (the newest ``keep`` dead letters are kept). ``counted``
# (a policed queue's) is told of each, before its origin is dropped. Needs KEEP
# before it.
REAP_FUNCTIONS = """\
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function reap(now, limit, max_deliveries, keep, counted)
  local expired = redis.call('ZRANGEBYSCORE', INFLIGHT, '-inf', now, 'LIMIT', 0, limit)
  local requeued, dead = 0, 0
  for _, id in ipairs(expired) do
    redis.call('ZREM', INFLIGHT, id)
    redis.call('HDEL', LEASE, id)
    local dies = tonumber(redis.call('HGET', DELIVERIES, id) or '0') >= max_deliveries
    if counted then counted(id, dies) end  -- a policed queue counts it (origin still there)
    if dies then
      redis.call('ZADD', DEAD, now, id)
      dead = dead + 1
    else
      redis.call('ZADD', READY, redis.call('HGET', ORIGIN, id), id)
      redis.call('HDEL', ORIGIN, id)
      requeued = requeued + 1
    end
  end
  if requeued > 0 then redis.call('ZADD', WAKE, 0, 'ready') end
  if dead > 0 then keep_newest(DEAD, keep) end
  return {requeued, dead}
end"""

# once(run): every script's body runs inside it (see "Reply" in the module doc); the
# body gets the count of its own arguments.
ONCE = """\
local function once(run)
  if not RECORD then return {0, run(#ARGV)} end
  local nargs = #ARGV - 2
  local request = tonumber(ARGV[nargs + 1])
  local saved = redis.call('GET', RECORD)
  if saved then
    local last = cmsgpack.unpack(saved)
    if request == last[1] then return {1, last[2]} end
    if request < last[1] then return redis.error_reply('pqlab: stale request') end
  end
  local reply = run(nargs)
  if type(reply) == 'table' and reply.err then return reply end
  redis.call('SET', RECORD, cmsgpack.pack({request, reply}), 'PX', ARGV[nargs + 2])
  return {0, reply}
end"""

# A policed queue's functions: the clock, a level's depth, the counters (``bump``; a
# stop sentinel is never counted), the high-water mark, timing out (REJECT: to the
# expired set; DELAY: to the back of its band), sweeping a level's deadlines, and
# reap()'s ``counted`` hook. Needs KEEP before it.
POLICY = """\
local function clock()  -- the server's time in ms (leases) and in µs (deadlines)
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return math.floor(us / 1000), us
end
local function level_of(score)
  return math.floor(tonumber(score) / BAND)
end
local function depth(level)  -- queued at the level now, timed-out DELAY ones included
  return redis.call('ZCOUNT', READY, level * BAND, (level + 1) * BAND - 1)
end
local function bump(level, name, n)  -- a stop sentinel is never counted
  if level ~= STOPS then redis.call('HINCRBY', COUNTS, level .. ':' .. name, n) end
end
local function note_depth(level, queued)  -- the level's high-water mark
  if level == STOPS then return end
  if queued > tonumber(redis.call('HGET', COUNTS, level .. ':peak') or '0') then
    redis.call('HSET', COUNTS, level .. ':peak', queued)
  end
end
local function timed_out(id, level, now)  -- REJECT: to the expired set; DELAY: to the back
  redis.call('ZREM', DEADLINES[level], id)
  if redis.call('HGET', POLICY, 'action:' .. level) == 'DELAY' then
    redis.call('ZADD', READY, level * BAND + DELAYED + tonumber(id), id)
  else
    redis.call('ZREM', READY, id)
    redis.call('ZADD', EXPIRED, now, id)
    bump(level, 'expired', 1)
  end
end
-- The requests of the level whose deadline passed, oldest deadline first: all of
-- them, or at most ``limit``; then the newest ``keep`` expired are kept. Returns how
-- many it handled.
local function sweep(level, now, keep, limit)
  local due
  if limit then
    due = redis.call('ZRANGEBYSCORE', DEADLINES[level], '-inf', now - 1, 'LIMIT', 0, limit)
  else
    due = redis.call('ZRANGEBYSCORE', DEADLINES[level], '-inf', now - 1)
  end
  for _, id in ipairs(due) do timed_out(id, level, now) end
  if #due > 0 then keep_newest(EXPIRED, keep) end
  return #due
end
local function counted(id, dies)  -- reap()'s hook: a lease ran out
  local level = level_of(redis.call('HGET', ORIGIN, id))
  bump(level, 'inflight', -1)
  if dies then
    bump(level, 'dead_lettered', 1)
  else
    bump(level, 'redelivered', 1)
    note_depth(level, depth(level) + 1)
  end
end"""

# -- the scripts -------------------------------------------------------------------------

ENQUEUE = script("""\
-- ENQUEUE: queue one task at its priority and set the wake-up marker.
-- KEYS: the queue's nine and RECORD (rediskeys); writes SEQ, READY, BODY, WAKE.
-- ARGV: priority (0-31), body (the task as JSON).
-- Returns: the task's id (its sequence number).
""", ONCE, """\
return once(function()
  local seq = redis.call('INCR', SEQ)
  if seq >= BAND then return redis.error_reply('pqlab: sequence exhausted') end
  redis.call('ZADD', READY, tonumber(ARGV[1]) * BAND + seq, seq)
  redis.call('HSET', BODY, seq, ARGV[2])
  redis.call('ZADD', WAKE, 0, 'ready')
  return seq
end)""")

CLAIM = script("""\
-- CLAIM: reap expired leases, then claim up to count of the most urgent tasks under a lease.
-- KEYS: the queue's nine and RECORD (rediskeys).
-- ARGV: count, lease_ms, max_deliveries, reap_limit, keep (dead letters kept).
-- Returns: {token, id1, deliveries1, body1, id2, ...}, or {} when nothing is ready.
""", KEEP, REAP_FUNCTIONS, ONCE, """\
return once(function()
  local now = now_ms()
  reap(now, tonumber(ARGV[4]), tonumber(ARGV[3]), tonumber(ARGV[5]))
  local popped = redis.call('ZPOPMIN', READY, ARGV[1])
  if #popped == 0 then return {} end
  local token = redis.call('INCR', SEQ)
  local deadline = now + tonumber(ARGV[2])
  local out = {token}
  for i = 1, #popped, 2 do
    local id = popped[i]
    redis.call('ZADD', INFLIGHT, deadline, id)
    redis.call('HSET', LEASE, id, token)
    redis.call('HSET', ORIGIN, id, popped[i + 1])
    out[#out + 1] = id
    out[#out + 1] = redis.call('HINCRBY', DELIVERIES, id, 1)
    out[#out + 1] = redis.call('HGET', BODY, id)
  end
  if redis.call('ZCARD', READY) > 0 then redis.call('ZADD', WAKE, 0, 'ready') end
  return out
end)""")


def _ack_body(before: str = "", after: str = "") -> str:
    """ACK's loop: each (id, token) pair whose lease still matches is removed; ``before``
    and ``after`` are Lua lines run for a removed task around its removal."""
    return ("""\
return once(function(nargs)
  local out = {}
  for i = 1, nargs, 2 do
    local id = ARGV[i]
    local held = redis.call('HGET', LEASE, id) == ARGV[i + 1]
    if held then
""" + before + """\
      redis.call('ZREM', INFLIGHT, id)
      redis.call('HDEL', BODY, id)
      redis.call('HDEL', LEASE, id)
      redis.call('HDEL', ORIGIN, id)
      redis.call('HDEL', DELIVERIES, id)
""" + after + """\
    end
    out[#out + 1] = held and 1 or 0
  end
  return out
end)""")


ACK = script("""\
-- ACK: remove each task whose lease token still matches.
-- KEYS: the queue's nine and RECORD (rediskeys).
-- ARGV: id1, token1, id2, token2, ...
-- Returns: per task, in order, 1 (removed) or 0 (not held by that lease).
""", ONCE, _ack_body())

REAP = script("""\
-- REAP: return at most reap_limit expired leases to the ready set, or dead-letter them.
-- KEYS: the queue's nine and RECORD (rediskeys).
-- ARGV: reap_limit, max_deliveries, keep (dead letters kept).
-- Returns: {requeued, dead_lettered}.
""", KEEP, REAP_FUNCTIONS, ONCE, """\
return once(function()
  return reap(now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
end)""")

POLICED_ENQUEUE = script("""\
-- POLICED_ENQUEUE: ENQUEUE under the stored policy: a full level rejects at once.
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: priority (a level 1-4), body, the request's own timeout (µs; 0: the
--   level's default), keep (expired requests kept).
-- Returns: the task's id; or {queued, max_queue_size} when the level is full (then
--   nothing is stored but the count of rejections). A full REJECT level first drops
--   every request of it whose deadline passed: at most its limit.
""", KEEP, POLICY, ONCE, """\
return once(function()
  local level, own = tonumber(ARGV[1]), tonumber(ARGV[3])
  local p = redis.call('HMGET', POLICY, 'max:' .. level, 'timeout:' .. level,
                       'override:' .. level, 'action:' .. level)
  if not p[1] then return redis.error_reply('pqlab: the policy has no level ' .. ARGV[1]) end
  local max, timeout = tonumber(p[1]), tonumber(p[2])
  if own > 0 and (p[3] ~= '1' or (timeout > 0 and own > timeout)) then
    return redis.error_reply('pqlab: the policy does not allow this request timeout')
  end
  local _, now = clock()
  local queued = depth(level)
  if max > 0 and queued >= max and p[4] == 'REJECT' then
    queued = queued - sweep(level, now, tonumber(ARGV[4]))  -- its timed-out requests make room
  end
  if max > 0 and queued >= max then
    bump(level, 'rejected', 1)
    return {queued, max}
  end
  local seq = redis.call('INCR', SEQ)
  if seq >= DELAYED then return redis.error_reply('pqlab: sequence exhausted') end
  redis.call('ZADD', READY, level * BAND + seq, seq)
  redis.call('HSET', BODY, seq, ARGV[2])
  local timeout_us = own > 0 and own or timeout
  if timeout_us > 0 then redis.call('ZADD', DEADLINES[level], now + timeout_us, seq) end
  redis.call('ZADD', WAKE, 0, 'ready')
  bump(level, 'admitted', 1)
  note_depth(level, queued + 1)
  return seq
end)""", policy_keys=True)

POLICED_CLAIM = script("""\
-- POLICED_CLAIM: CLAIM under the policy: a popped request whose deadline passed is
--   never claimed (timed_out takes it), at most step_limit of them per call.
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: count, lease_ms, max_deliveries, reap_limit, keep, step_limit.
-- Returns: as CLAIM; {0} (no token) when the call reached step_limit before claiming
--   anything: the caller calls again.
""", KEEP, POLICY, REAP_FUNCTIONS, ONCE, """\
return once(function()
  local now_ms, now = clock()
  local keep, steps = tonumber(ARGV[5]), tonumber(ARGV[6])
  reap(now_ms, tonumber(ARGV[4]), tonumber(ARGV[3]), keep, counted)
  local count, deadline, out = tonumber(ARGV[1]), now_ms + tonumber(ARGV[2]), {}
  while #out < 1 + 3 * count do
    if steps == 0 then
      if #out == 0 then out[1] = 0 end
      break
    end
    local popped = redis.call('ZPOPMIN', READY)
    if #popped == 0 then break end
    local id, level = popped[1], level_of(popped[2])
    local due = level ~= STOPS and redis.call('ZSCORE', DEADLINES[level], id)
    if due and tonumber(due) < now then
      timed_out(id, level, now)
      steps = steps - 1
    else
      if due then redis.call('ZREM', DEADLINES[level], id) end
      if #out == 0 then out[1] = redis.call('INCR', SEQ) end  -- the lease token
      redis.call('ZADD', INFLIGHT, deadline, id)
      redis.call('HSET', LEASE, id, out[1])
      redis.call('HSET', ORIGIN, id, popped[2])
      bump(level, 'inflight', 1)
      out[#out + 1] = id
      out[#out + 1] = redis.call('HINCRBY', DELIVERIES, id, 1)
      out[#out + 1] = redis.call('HGET', BODY, id)
    end
  end
  if steps < tonumber(ARGV[6]) then keep_newest(EXPIRED, keep) end
  if redis.call('ZCARD', READY) > 0 then redis.call('ZADD', WAKE, 0, 'ready') end
  return out
end)""", policy_keys=True)

POLICED_ACK = script("""\
-- POLICED_ACK: ACK, counting each acknowledged task as served at its level.
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: id1, token1, id2, token2, ...
-- Returns: per task, in order, 1 (removed) or 0 (not held by that lease).
""", KEEP, POLICY, ONCE, _ack_body(
    before="      local level = level_of(redis.call('HGET', ORIGIN, id))\n",
    after="      bump(level, 'served', 1)\n      bump(level, 'inflight', -1)\n"),
    policy_keys=True)

POLICED_REAP = script("""\
-- POLICED_REAP: REAP, counting each lease that ran out (redelivered or dead_lettered).
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: reap_limit, max_deliveries, keep (dead letters kept).
-- Returns: {requeued, dead_lettered}.
""", KEEP, POLICY, REAP_FUNCTIONS, ONCE, """\
return once(function()
  return reap(clock(), tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), counted)
end)""", policy_keys=True)

DRAIN = script("""\
-- DRAIN: sweep the REJECT levels (at most step_limit requests), then take at most
--   step_limit of the expired set, oldest expiry first.
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: step_limit, keep, then the levels whose action is REJECT.
-- Returns: {more, body1, body2, ...}: more is 1 when the call stopped at a limit
--   (call again), 0 when it found and took everything.
""", KEEP, POLICY, ONCE, """\
return once(function(nargs)
  local _, now = clock()
  local limit, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
  local steps = limit
  for i = 3, nargs do
    if steps > 0 then steps = steps - sweep(tonumber(ARGV[i]), now, keep, steps) end
  end
  local ids = redis.call('ZRANGE', EXPIRED, 0, limit - 1)
  local out = {0}
  for _, id in ipairs(ids) do
    out[#out + 1] = redis.call('HGET', BODY, id)
    redis.call('HDEL', BODY, id)
  end
  if #ids > 0 then redis.call('ZREMRANGEBYRANK', EXPIRED, 0, #ids - 1) end
  if steps == 0 or redis.call('EXISTS', EXPIRED) == 1 then out[1] = 1 end
  return out
end)""", policy_keys=True)

CANCEL = script("""\
-- CANCEL: remove a queued request (not one in flight), by id or by its very body;
--   on a policed queue it counts as cancelled.
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: "id", id; or "task", band, body, cursor, step_limit: the first request in
--   line in the band with that body, scanning at most step_limit entries after the
--   score cursor ("" to start).
-- Returns: 1 (removed) or 0 (not queued); {score} when the scan stopped at its limit:
--   call again with that score as the cursor.
""", KEEP, POLICY, ONCE, """\
return once(function()
  local id = ARGV[2]
  if ARGV[1] == 'task' then
    id = nil
    local low, limit = tonumber(ARGV[2]) * BAND, tonumber(ARGV[5])
    local from = low
    if ARGV[4] ~= '' then from = '(' .. ARGV[4] end
    local scan = redis.call('ZRANGEBYSCORE', READY, from, low + BAND - 1, 'WITHSCORES',
                            'LIMIT', 0, limit)
    for i = 1, #scan, 2 do
      if redis.call('HGET', BODY, scan[i]) == ARGV[3] then id = scan[i] break end
    end
    if not id then
      if #scan < 2 * limit then return 0 end
      return {scan[#scan]}
    end
  end
  local score = redis.call('ZSCORE', READY, id)
  if not score then return 0 end
  local level = level_of(score)
  redis.call('ZREM', READY, id)
  redis.call('HDEL', BODY, id)
  redis.call('HDEL', DELIVERIES, id)
  if level ~= STOPS and redis.call('EXISTS', POLICY) == 1 then
    redis.call('ZREM', DEADLINES[level], id)
    bump(level, 'cancelled', 1)
  end
  return 1
end)""", policy_keys=True)

STATE = script("""\
-- STATE: the depths and the counters, read at one instant (a policed queue's
--   conservation holds on one reply).
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: levels.
-- Returns: {queued at each level..., the counters as HGETALL gives them}.
""", KEEP, POLICY, ONCE, """\
return once(function(nargs)
  local out = {}
  for i = 1, nargs do out[i] = depth(tonumber(ARGV[i])) end
  out[nargs + 1] = redis.call('HGETALL', COUNTS)
  return out
end)""", policy_keys=True)

CHECK = script("""\
-- CHECK: fix the queue's policy when it is first used. The first client with a
--   policy stores it on a queue nobody used yet; a client without one marks the
--   queue as used (an empty sequence counter), so no policy can be stored later.
-- KEYS: the queue's nine, RECORD and the policy's seven (rediskeys).
-- ARGV: the client's policy as JSON ("" for none), then the policy hash's other
--   fields and values.
-- Returns: the queue's policy as JSON ("" for none).
""", ONCE, """\
return once(function(nargs)
  local stored = redis.call('HGET', POLICY, 'json')
  if stored then return stored end
  if ARGV[1] == '' or redis.call('EXISTS', SEQ) == 1 then
    redis.call('SETNX', SEQ, 0)
    return ''
  end
  redis.call('HSET', POLICY, 'json', unpack(ARGV, 1, nargs))
  return ARGV[1]
end)""", policy_keys=True)

SCRIPTS = (ENQUEUE, CLAIM, ACK, REAP, POLICED_ENQUEUE, POLICED_CLAIM, POLICED_ACK,
           POLICED_REAP, DRAIN, CANCEL, STATE, CHECK)
