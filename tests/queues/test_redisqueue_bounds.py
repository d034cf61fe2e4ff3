"""The Redis queue's bounds: work per script call, a busy server, and what it retains.

The many requests these tests need are written by one seeding script (the
enqueue script's layout, without its checks, thousands per call); the
queue's own scripts then claim, expire, drain, cancel and dead-letter them.
The server runs with ``appendfsync no``: these tests are about bounds, not
durability, and an fsync per call would only make them slower.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis_helpers import private_server

from pqlab.core.task import Task
from pqlab.queues.policy import LevelPolicy, QueuePolicy
from pqlab.queues.redisqueue import (
    CANCEL,
    DRAIN,
    POLICED_CLAIM,
    STEP_LIMIT,
    Backoff,
    RedisPriorityQueue,
    encode_task,
)

pytestmark = pytest.mark.redis

WAIT_S = 60.0  # generous: every wait polls a condition and fails only past this
# HIGH requests time out (REJECT) after a minute unless seeded with a passed deadline;
# NORMAL and LOW ones never do.
POLICY = QueuePolicy(levels={2: LevelPolicy(default_timeout_s=60.0)})

# KEYS: seq, ready, body, the level's deadlines, counts, inflight, lease, origin,
# deliveries. ARGV: level, how many, their deadline (µs, server clock; 0: none), and
# "claimed" to put them in flight instead, claimed once under a lease already run out.
# Writes them as the policed enqueue (and claim) do, counted admitted (and in flight).
_SEED = """
local level, n, deadline = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local claimed, body = ARGV[4] == 'claimed', '[' .. level .. ',0,0.0,"seeded","m",null]'
local last = redis.call('INCRBY', KEYS[1], n)
for first = last - n + 1, last, 1000 do  -- 1,000 per command: below Lua's stack limit
  local scores, deadlines, bodies, leases, origins = {}, {}, {}, {}, {}
  for seq = first, math.min(first + 999, last) do
    local score = level * 281474976710656 + seq
    scores[#scores + 1], scores[#scores + 2] = claimed and 0 or score, seq
    deadlines[#deadlines + 1], deadlines[#deadlines + 2] = deadline, seq
    bodies[#bodies + 1], bodies[#bodies + 2] = seq, body
    leases[#leases + 1], leases[#leases + 2] = seq, 1
    origins[#origins + 1], origins[#origins + 2] = seq, score
  end
  redis.call('HSET', KEYS[3], unpack(bodies))
  if claimed then
    redis.call('ZADD', KEYS[6], unpack(scores))  -- leases that ran out at time 0
    redis.call('HSET', KEYS[7], unpack(leases))  -- token 1
    redis.call('HSET', KEYS[8], unpack(origins))
    redis.call('HSET', KEYS[9], unpack(leases))  -- delivered once
  else
    redis.call('ZADD', KEYS[2], unpack(scores))
    if deadline > 0 then redis.call('ZADD', KEYS[4], unpack(deadlines)) end
  end
end
redis.call('HINCRBY', KEYS[5], level .. ':admitted', n)
if claimed then redis.call('HINCRBY', KEYS[5], level .. ':inflight', n) end
"""


@pytest.fixture(scope="module")
def server():
    srv = private_server()
    admin = redis.Redis.from_url(srv.url)
    admin.config_set("appendfsync", "no")
    admin.close()
    yield srv
    srv.stop()


def server_us(q: RedisPriorityQueue) -> int:
    seconds, micros = q.command("TIME")
    return int(seconds) * 1_000_000 + int(micros)


def seed(q: RedisPriorityQueue, level: int, n: int, expired: bool = False,
         claimed: bool = False) -> None:
    """Queue ``n`` requests at ``level``, with a deadline already passed if ``expired``; or,
    if ``claimed``, hold them in flight under leases that have run out."""
    deadline = server_us(q) - 1 if expired else 0
    keys = (q.keys[0], q.keys[1], q.keys[3], q.policy_keys[2 + level], q.policy_keys[1],
            q.keys[2], q.keys[4], q.keys[5], q.keys[6])
    for done in range(0, n, 50_000):
        q.command("EVAL", _SEED, len(keys), *keys, level, min(50_000, n - done), deadline,
                  "claimed" if claimed else "")


def conserved(row: dict[str, int]) -> bool:
    return row["admitted"] == (row["served"] + row["expired"] + row["cancelled"]
                               + row["dead_lettered"] + row["queued"] + row["inflight"])


def test_one_script_call_expires_drains_or_scans_at_most_step_limit(server):
    """Issue 19, item 6: a claim met every expired request in one call, a drain took the
    whole expired set in one, a cancel by Task compared the whole level in one."""
    q = RedisPriorityQueue(server.url, policy=POLICY, retain=100_000)
    n = 10 * STEP_LIMIT
    seed(q, 2, n, expired=True)
    live = q.put(Task(3, 1, 0.0, "live", "m", None))
    assert q._script(POLICED_CLAIM, *q._claim_args)[1] == [0]  # stopped, nothing claimed
    assert q.counts()[2]["expired"] == STEP_LIMIT and q.depths()[2] == n - STEP_LIMIT
    (claim,) = q.claim()  # its further calls go on until they reach the live request
    assert claim.task_id == live and q.counts()[2]["expired"] == n
    q.ack(claim)

    seed(q, 2, 2 * STEP_LIMIT + 500, expired=True)  # for the drain's own sweep
    more, *bodies = q._script(DRAIN, STEP_LIMIT, q.retain, 2)[1]
    assert more == 1 and len(bodies) == STEP_LIMIT
    assert q.counts()[2]["expired"] == n + STEP_LIMIT  # swept no more than its limit
    assert len(q.drain_expired()) == n + 1_500 and q.expired_tasks() == []
    assert q.counts()[2]["expired"] == n + 2 * STEP_LIMIT + 500

    seed(q, 3, 2 * STEP_LIMIT + 10, expired=False)
    target = Task(3, 2, 0.0, "target", "m", None)
    q.put(target)  # behind every seeded one
    reply = q._script(CANCEL, "task", 3, encode_task(target), "", STEP_LIMIT)[1]
    assert isinstance(reply, list)  # scanned its limit without finding it: a cursor
    assert q.cancel(target) is True and q.cancel(target) is False
    assert all(conserved(row) for row in q.snapshot().values())
    q.delete()


# Holds the server (every client gets BUSY past busy-reply-threshold) for ARGV[1] ms.
_BUSY_LOOP = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local stop = now_us() + tonumber(ARGV[1]) * 1000
repeat until now_us() >= stop
"""


def wait_until_busy(url: str) -> None:
    probe = redis.Redis.from_url(url)
    give_up = time.monotonic() + WAIT_S
    try:
        while True:
            assert time.monotonic() < give_up, "the server never answered BUSY"
            try:
                probe.ping()
            except redis.ResponseError as exc:
                if str(exc).startswith("BUSY"):
                    return
                raise
            time.sleep(0.005)
    finally:
        probe.close()


def test_a_busy_server_is_waited_out_with_backoff_not_raised(server):
    """Issue 19, item 6: a BUSY reply (another client's long script) was raised as a
    ResponseError; it is retried like a lost connection (the command did not run)."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    q = RedisPriorityQueue(server.url, policy=POLICY, backoff=Backoff(sleep=sleep))
    admin = redis.Redis.from_url(server.url)
    admin.config_set("busy-reply-threshold", 20)  # ms; Redis 7's name for lua-time-limit
    hog = threading.Thread(target=lambda: redis.Redis.from_url(server.url).eval(
        _BUSY_LOOP, 0, 1_500), daemon=True)
    try:
        hog.start()
        wait_until_busy(server.url)
        task_id = q.put(Task(1, 1, 0.0, "while busy", "m", None))
        hog.join(WAIT_S)
    finally:
        admin.config_set("busy-reply-threshold", 5_000)
        admin.close()
    assert sleeps, "the put never met BUSY"
    (claim,) = q.claim()
    assert claim.task_id == task_id and q.counts()[1]["admitted"] == 1
    q.ack(claim)
    q.delete()


def test_100000_expiries_and_dead_letters_stay_within_retain(server):
    """Issue 19, item 7: dead letters kept body, origin and deliveries for ever, and the
    expired set grew until drained. Past ``retain`` the oldest go, with their fields."""
    retain, n = 100, 100_000
    q = RedisPriorityQueue(server.url, policy=POLICY, retain=retain, max_deliveries=1)
    seed(q, 2, n, expired=True)  # each claim call expires STEP_LIMIT of them, and trims
    seed(q, 4, n, claimed=True)  # delivered once, leases run out: each reap dead-letters
    assert q.claim() == []
    while q.inflight():
        q.reap(limit=10_000)
    counts = q.snapshot()
    assert counts[2]["expired"] == n and counts[4]["dead_lettered"] == n
    assert all(conserved(row) for row in counts.values())
    assert q.command("ZCARD", q.policy_keys[2]) == retain  # expired, not drained
    assert q.command("ZCARD", q.keys[7]) == retain  # dead letters
    assert q.command("HLEN", q.keys[3]) == 2 * retain  # bodies: only of the ones kept
    assert q.command("HLEN", q.keys[5]) == q.command("HLEN", q.keys[6]) == retain
    dead = q.dead_letters()
    assert len(dead) == retain and all(t.priority == 4 for t in dead)
    assert len(q.drain_expired()) == retain
    q.delete()
