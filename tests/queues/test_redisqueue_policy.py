"""The queue policy on the Redis queue: limits, timeouts, cancel, counts, all in the scripts.

Expiry is driven by short timeouts and the server's own clock: a test reads a
request's stored deadline and polls the server's ``TIME`` until it has passed,
so a slow machine delays the test but never changes what it sees.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time

import pytest
from redis_helpers import private_server

from pqlab.core.task import STOP, Priority, Task, make_workload, stop_sentinels
from pqlab.queues import create_queue
from pqlab.queues.policy import LevelPolicy, PolicyError, QueuePolicy, Rejected
from pqlab.queues.redisqueue import COUNTED, AckStatus, RedisPriorityQueue
from pqlab.queues.redisserver import RedisUnavailable

pytestmark = pytest.mark.redis

LEASE_S = 0.5  # a killed consumer's tasks come back after this
WAIT_S = 60.0  # generous: every wait polls a condition and fails only past this


@pytest.fixture(scope="module")
def server():
    srv = private_server()
    yield srv
    srv.stop()


def task(priority: int, seq: int) -> Task:
    return Task(priority, seq, 0.0, f"task-{seq}", "model-0", None)


def make(server, policy: QueuePolicy | None, **options) -> RedisPriorityQueue:
    return RedisPriorityQueue(server.url, policy=policy, **options)


def server_us(q: RedisPriorityQueue) -> int:
    seconds, micros = q.command("TIME")
    return int(seconds) * 1_000_000 + int(micros)


def wait_past(q: RedisPriorityQueue, deadline_us: float) -> None:
    """Poll the server's clock until it is past ``deadline_us``."""
    give_up = time.monotonic() + WAIT_S
    while server_us(q) <= deadline_us:
        assert time.monotonic() < give_up, "the server's clock never passed the deadline"
        time.sleep(0.005)


def wait_past_deadline(q: RedisPriorityQueue, level: int, task_id: int) -> None:
    """Poll the server's clock until the queued request's deadline has passed."""
    wait_past(q, float(q.command("ZSCORE", q.policy_keys[2 + level], task_id)))


def wait_until_expired(q: RedisPriorityQueue, level: int) -> None:
    """Poll the server's clock until every deadline now set at ``level`` has passed."""
    last = q.command("ZRANGE", q.policy_keys[2 + level], -1, -1, "WITHSCORES")
    if last:  # RESP3 (redis-py 8's default) gives [[id, score]], RESP2 [id, score]
        wait_past(q, float(last[0][1] if isinstance(last[0], list) else last[1]))


def conserved(row: dict[str, int]) -> bool:
    return row["admitted"] == (row["served"] + row["expired"] + row["cancelled"]
                               + row["dead_lettered"] + row["queued"] + row["inflight"])


def stored_ids(q: RedisPriorityQueue) -> int:
    return q.command("HLEN", q.keys[3])


# -- limits --------------------------------------------------------------------------


def test_a_full_level_rejects_at_once_and_stores_nothing(server):
    q = make(server, QueuePolicy(levels={1: LevelPolicy(max_queue_size=2)}))
    q.put(task(1, 1))
    q.put(task(1, 2))
    with pytest.raises(Rejected, match=r"level 1 \(CRITICAL\) is full: 2 queued, "
                                       r"max_queue_size 2") as caught:
        q.put(task(1, 3))
    assert caught.value.level == 1 and caught.value.reason == "full"
    assert q.qsize() == 2 and stored_ids(q) == 2
    q.put(task(2, 4))  # other levels still admit
    counts = q.counts()
    assert counts[1]["admitted"] == 2 and counts[1]["rejected"] == 1
    assert counts[2]["admitted"] == 1 and set(counts[1]) == set(COUNTED)
    assert q.depths() == {1: 2, 2: 1, 3: 0, 4: 0}
    (claim,) = q.claim()
    q.ack(claim)
    q.put(task(1, 5))  # room again once one was taken
    assert q.depths()[1] == 2 and q.counts()[1]["served"] == 1
    q.delete()


LIMITS = {1: 3, 2: 5, 3: 8, 4: 10}
PRODUCERS = 20
PUTS_EACH = 60


def _produce(url: str, name: str, policy: QueuePolicy, seed: int, start, results) -> None:
    """One producer process: puts at random levels; reports (admitted, rejected) per level."""
    q = RedisPriorityQueue(url, name, policy=policy)
    rng = random.Random(seed)
    admitted, rejected = dict.fromkeys(LIMITS, 0), dict.fromkeys(LIMITS, 0)
    start.wait(WAIT_S)
    for i in range(PUTS_EACH):
        level = rng.choice(list(LIMITS))
        try:
            q.put(task(level, seed * 1_000 + i))
            admitted[level] += 1
        except Rejected:
            rejected[level] += 1
    results.put((admitted, rejected))


@pytest.mark.slow
def test_limits_hold_under_20_producer_processes(server):
    policy = QueuePolicy(levels={lvl: LevelPolicy(max_queue_size=n) for lvl, n in LIMITS.items()})
    q = make(server, policy)
    # Twenty fresh processes, none sharing a client with another: forked from one server
    # process that imported this module once (a spawned child each took ~1 s to import).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    start, results = ctx.Event(), ctx.Queue()
    producers = [ctx.Process(target=_produce, args=(server.url, q.name, policy, seed, start,
                                                    results)) for seed in range(PRODUCERS)]
    for p in producers:
        p.start()
    sampled, served, done = dict.fromkeys(LIMITS, 0), dict.fromkeys(LIMITS, 0), threading.Event()

    def sample() -> None:  # plain ZCOUNTs, beside the scripts' own high-water mark
        while not done.is_set():
            for level in LIMITS:
                band = level * 2**48
                n = q.command("ZCOUNT", q.keys[1], band, band + 2**48 - 1)
                sampled[level] = max(sampled[level], n)

    def consume() -> None:  # at most 50/s, far slower than 20 producers: every level fills
        while not done.is_set():
            for claim in q.claim():
                assert q.ack(claim) == 1
                served[claim.task.priority] += 1
            time.sleep(0.02)

    threads = [threading.Thread(target=sample), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    start.set()
    tallies = [results.get(timeout=WAIT_S * 2) for _ in producers]
    done.set()
    for t in threads + producers:
        t.join(WAIT_S)
    snapshot = q.snapshot()
    for level, limit in LIMITS.items():
        row = snapshot[level]
        assert row["peak"] == limit, (level, row)  # reached, never passed
        assert sampled[level] <= limit
        assert row["admitted"] == sum(a[level] for a, _ in tallies)
        assert row["rejected"] == sum(r[level] for _, r in tallies) > 0
        assert row["served"] == served[level] and conserved(row)
    assert sum(row["admitted"] + row["rejected"] for row in snapshot.values()) == (
        PRODUCERS * PUTS_EACH)
    assert stored_ids(q) == q.qsize()  # a rejected put left no body behind
    q.delete()


# -- timeouts --------------------------------------------------------------------------


def test_reject_an_expired_request_is_never_claimed_and_is_reported(server):
    q = make(server, QueuePolicy(levels={
        2: LevelPolicy(allow_timeout_override=True),
        3: LevelPolicy(default_timeout_s=0.05)}))
    short = q.put(task(2, 1), request_timeout_s=0.05)
    kept = q.put(task(2, 2))  # no timeout of its own, none by default
    deep = q.put(task(3, 3))
    wait_past_deadline(q, 2, short)
    wait_past_deadline(q, 3, deep)
    assert q.expired_tasks() == []  # not found yet: a claim finds them as it reaches them
    (claim,) = q.claim(count=10)
    assert claim.task_id == kept and q.qsize() == 0
    assert [t.seq for t in q.expired_tasks()] == [1, 3]
    counts = q.counts()
    assert counts[2]["expired"] == counts[3]["expired"] == 1
    assert [t.seq for t in q.drain_expired()] == [1, 3]
    assert q.expired_tasks() == [] and q.drain_expired() == [] and stored_ids(q) == 1
    q.ack(claim)
    assert all(conserved(row) for row in q.snapshot().values())
    q.delete()


def test_drain_expired_finds_an_expired_request_behind_a_live_one(server):
    q = make(server, QueuePolicy(levels={2: LevelPolicy(allow_timeout_override=True)}))
    q.put(task(2, 1))
    short = q.put(task(2, 2), request_timeout_s=0.05)
    wait_past_deadline(q, 2, short)
    assert [t.seq for t in q.drain_expired()] == [2]
    assert q.depths()[2] == 1 and q.counts()[2]["expired"] == 1
    q.delete()


def test_a_full_reject_level_drops_its_expired_requests_to_admit(server):
    q = make(server, QueuePolicy(levels={1: LevelPolicy(max_queue_size=1,
                                                        default_timeout_s=0.05)}))
    first = q.put(task(1, 1))
    wait_past_deadline(q, 1, first)
    q.put(task(1, 2))  # the expired one makes room
    assert [t.seq for t in q.expired_tasks()] == [1]
    assert q.counts()[1] == {**dict.fromkeys(COUNTED, 0), "admitted": 2, "expired": 1}
    q.delete()


DELAY_POLICY = QueuePolicy(levels={3: LevelPolicy(allow_timeout_override=True,
                                                  timeout_action="DELAY")})


def _delay_sequence(put) -> None:
    """NORMAL: 1 and 3 time out, 2 and 4 never do; HIGH 5 and LOW 6 around them."""
    for seq, own in ((1, 0.05), (2, None), (3, 0.05), (4, None)):
        put(task(Priority.NORMAL, seq), own)
    put(task(Priority.HIGH, 5), None)
    put(task(Priority.LOW, 6), None)


def test_delay_puts_timed_out_requests_behind_their_level_as_in_process(server):
    q = make(server, DELAY_POLICY)
    ids = {}

    def put(t: Task, own: float | None) -> None:
        ids[t.seq] = q.put(t, request_timeout_s=own) if own else q.put(t)

    _delay_sequence(put)
    for seq in (1, 3):
        wait_past_deadline(q, 3, ids[seq])
    redis_order = [c.task.seq for c in q.claim(count=10)]

    now = [0.0]  # the in-process queue on a fake clock, past both timeouts
    local = create_queue("ThreadSafeBucketQueue", policy=DELAY_POLICY, clock=lambda: now[0])
    _delay_sequence(lambda t, own: local.put(t, request_timeout_s=own))
    now[0] = 1.0
    local_order = [local.get().seq for _ in range(6)]
    assert redis_order == local_order == [5, 2, 4, 1, 3, 6]
    assert q.counts()[3]["expired"] == 0 and q.expired_tasks() == []
    q.delete()


def test_request_timeouts_follow_the_in_process_rules_and_store_nothing(server):
    policy = QueuePolicy(levels={
        1: LevelPolicy(default_timeout_s=1.0, allow_timeout_override=True),
        2: LevelPolicy(default_timeout_s=1.0)})
    q = make(server, policy)
    local = create_queue("ThreadSafeBucketQueue", policy=policy)
    for level, own in ((1, 2.0), (1, -1), (1, float("inf")), (1, True), (2, 0.5)):
        with pytest.raises(PolicyError) as in_process:
            local.put(task(level, 1), request_timeout_s=own)
        with pytest.raises(PolicyError) as on_redis:
            q.put(task(level, 1), request_timeout_s=own)
        assert str(on_redis.value) == str(in_process.value)
        assert "\n" not in str(on_redis.value)
    with pytest.raises(ValueError, match="not one of this queue's levels 1, 2, 3, 4"):
        q.put(task(5, 1))
    assert q.qsize() == 0 and stored_ids(q) == 0
    assert q.command("GET", q.keys[0]) is None  # no id was even drawn
    assert all(row["admitted"] == 0 for row in q.counts().values())
    q.put(task(1, 2), request_timeout_s=0.5)  # shorter: allowed
    q.delete()


def test_without_a_policy_a_request_timeout_is_refused(server):
    q = make(server, None)
    with pytest.raises(PolicyError, match="allow_timeout_override is false"):
        q.put(task(1, 1), request_timeout_s=1.0)
    with pytest.raises(PolicyError, match="counts need a policy"):
        q.counts()
    assert q.qsize() == 0 and q.drain_expired() == []
    q.delete()


# -- the stored policy -------------------------------------------------------------------


def test_a_client_with_another_policy_is_refused_naming_both(server):
    mine = QueuePolicy(LevelPolicy(max_queue_size=5))
    q = make(server, mine)
    other = QueuePolicy(LevelPolicy(max_queue_size=6))
    with pytest.raises(PolicyError) as caught:
        RedisPriorityQueue(server.url, q.name, policy=other)
    message = str(caught.value)
    assert '"max_queue_size":5' in message and '"max_queue_size":6' in message
    assert "\n" not in message
    bare = RedisPriorityQueue(server.url, q.name)  # no policy: refused on its first command
    with pytest.raises(PolicyError, match="this client has none"):
        bare.put(task(1, 1))
    same = RedisPriorityQueue(server.url, q.name, policy=QueuePolicy.from_mapping(
        mine.to_mapping()))
    same.put(task(1, 1))
    assert q.qsize() == 1
    q.delete()


def test_no_policy_is_stored_under_a_queue_already_used_without_one(server):
    q = make(server, None)
    q.put(task(1, 1))
    with pytest.raises(PolicyError, match="has no policy"):
        RedisPriorityQueue(server.url, q.name, policy=QueuePolicy(LevelPolicy(max_queue_size=1)))
    assert q.command("EXISTS", *q.policy_keys) == 0
    q.put(task(1, 2))  # still a plain queue
    q.delete()


@pytest.mark.parametrize("policy, error", [
    ({"default": {"max_queue_size": 3}}, "policy must be a QueuePolicy or None"),
    (QueuePolicy(levels={7: LevelPolicy(max_queue_size=1)}), "the queue has no level 7"),
])
def test_a_bad_policy_is_one_line_and_writes_nothing(server, policy, error):
    name = "bad-policy"
    with pytest.raises(PolicyError, match=error) as caught:
        RedisPriorityQueue(server.url, name, policy=policy)
    assert "\n" not in str(caught.value)
    probe = RedisPriorityQueue(server.url, "probe")
    assert probe.command("KEYS", f"{{pqlab:{name}}}:*") == []


def test_out_of_range_limits_and_timeouts_fail_as_in_process():
    for bad, message in (({"max_queue_size": -1}, "levels.LOW.max_queue_size must be"),
                         ({"default_timeout_s": float("inf")},
                          "levels.LOW.default_timeout_s must be")):
        with pytest.raises(PolicyError, match=message):
            QueuePolicy.from_mapping({"levels": {"LOW": bad}})


def test_a_timeout_past_the_exact_range_is_cut_not_refused(server):
    q = make(server, QueuePolicy(LevelPolicy(default_timeout_s=1e300)))
    task_id = q.put(task(1, 1))
    deadline_us = float(q.command("ZSCORE", q.policy_keys[3], task_id))
    assert deadline_us < 2**53 and deadline_us - server_us(q) > 2**51
    assert q.claim()[0].task_id == task_id
    q.delete()


# -- cancel, redelivery, dead letters --------------------------------------------------


def test_cancel_by_id_and_by_task(server):
    q = make(server, QueuePolicy(LevelPolicy(default_timeout_s=60.0)))
    first, second = task(2, 1), task(2, 2)
    first_id = q.put(first)
    q.put(second)
    q.put(task(3, 3))
    assert q.cancel(first_id) is True and q.cancel(first_id) is False
    assert q.cancel(second) is True and q.cancel(second) is False
    assert q.cancel(task(2, 99)) is False  # never put
    (claim,) = q.claim()
    assert q.cancel(claim.task_id) is False  # in flight, not queued
    assert q.command("ZCARD", q.policy_keys[4]) == 0  # their deadlines went with them
    assert q.counts()[2]["cancelled"] == 2 and stored_ids(q) == 1
    with pytest.raises(TypeError, match="cancel takes a Task or the int id"):
        q.cancel("task-1")
    q.ack(claim)
    assert all(conserved(row) for row in q.snapshot().values())
    q.delete()


def test_cancel_on_a_plain_queue(server):
    q = make(server, None)
    task_id = q.put(task(1, 1))
    q.put(task(1, 2))
    assert q.cancel(task_id) is True and q.cancel(task(1, 2)) is True
    assert q.qsize() == 0 and stored_ids(q) == 0 and q.depths() == dict.fromkeys(range(1, 5), 0)
    q.delete()


def test_a_lapsed_lease_counts_as_redelivered_then_dead_lettered(server):
    q = make(server, QueuePolicy(LevelPolicy(max_queue_size=1)), lease_s=0.2, max_deliveries=2)
    q.put(task(4, 1))
    for deliveries in (1, 2):
        (claim,) = q.claim()
        assert claim.deliveries == deliveries
        assert q.snapshot()[4]["inflight"] == 1
        give_up = time.monotonic() + WAIT_S
        while q.reap() == (0, 0):
            assert time.monotonic() < give_up, "the lease never ran out"
            time.sleep(0.02)
    row = q.snapshot()[4]
    assert (row["admitted"], row["redelivered"], row["dead_lettered"]) == (1, 1, 1)
    assert row["inflight"] == row["queued"] == 0 and conserved(row)
    assert [t.seq for t in q.dead_letters()] == [1]
    q.delete()


# -- stop sentinels are not requests ---------------------------------------------------


def wait_lease_lapsed(q: RedisPriorityQueue, claim) -> None:
    """Poll the server's clock until ``claim``'s lease has run out."""
    wait_past(q, float(q.command("ZSCORE", q.keys[2], claim.task_id)) * 1000)


def test_get_loses_no_task_when_it_puts_back_a_stop_sentinel(server):
    """Issue 19, item 1: LOW limit 1; a sentinel claimed and never acknowledged; LOW and
    CRITICAL put; the lease runs out; get() with count 2 must return CRITICAL. Before, it
    acknowledged CRITICAL and the sentinel, and the sentinel's re-put to the full LOW level
    raised Rejected: CRITICAL was counted served and never returned."""
    q = make(server, QueuePolicy(levels={4: LevelPolicy(max_queue_size=1)}), count=2)
    first, second = stop_sentinels(2)
    q.put(first)
    (held,) = q.claim(count=1, lease_s=0.05)  # never acknowledged
    assert held.task.payload is STOP
    q.put(task(Priority.LOW, 1))
    q.put(task(Priority.CRITICAL, 2))
    wait_lease_lapsed(q, held)
    assert q.get().seq == 2
    assert q.get().seq == 1
    q.put(second)  # two sentinels claimed together: one returned, the other put back
    assert [q.get().payload for _ in range(2)] == [STOP, STOP]
    assert q.qsize() == q.inflight() == 0
    snapshot = q.snapshot()
    assert all(conserved(row) for row in snapshot.values())
    for level, seen in ((1, 1), (4, 1)):
        row = snapshot[level]
        assert (row["admitted"], row["served"], row["rejected"], row["redelivered"]) == (
            seen, seen, 0, 0)  # the sentinels, redelivered and put back, counted nowhere
    q.delete()


def test_a_stop_sentinel_is_never_refused_expired_or_counted(server):
    q = make(server, QueuePolicy(levels={4: LevelPolicy(max_queue_size=1,
                                                        default_timeout_s=0.05)}))
    low = q.put(task(Priority.LOW, 1))
    [sentinel] = stop_sentinels(1)
    q.put(sentinel)  # the LOW level is full: the sentinel goes in all the same
    with pytest.raises(Rejected):
        q.put(task(Priority.LOW, 2))
    with pytest.raises(PolicyError, match="a stop sentinel takes no request_timeout_s"):
        q.put(sentinel, request_timeout_s=1.0)
    wait_past_deadline(q, 4, low)
    assert [t.seq for t in q.drain_expired()] == [1]  # the request, not the sentinel
    assert q.depths() == dict.fromkeys(range(1, 5), 0)
    (claim,) = q.claim()
    assert claim.task.payload is STOP and claim.task.priority == Priority.LOW
    q.ack(claim)
    assert q.counts()[4] == {**dict.fromkeys(COUNTED, 0), "admitted": 1, "rejected": 1,
                             "expired": 1}
    assert q.cancel(q.put(sentinel)) is True and q.cancel(sentinel) is False
    assert all(conserved(row) for row in q.snapshot().values())
    q.delete()


def test_a_plain_queue_hands_out_tasks_before_a_stop_sentinel_claimed_with_them(server):
    q = make(server, None, count=3)
    [sentinel] = stop_sentinels(1)
    q.put(sentinel)
    q.put(task(Priority.LOW, 1))  # behind the sentinel: a consumer that stops keeps none
    assert q.get().seq == 1
    assert q.get().payload is STOP
    assert q.qsize() == q.inflight() == 0
    q.delete()


# -- conservation with cancels and a killed consumer ------------------------------------

MIXED_POLICY = QueuePolicy(levels={
    1: LevelPolicy(max_queue_size=15),
    2: LevelPolicy(max_queue_size=25, default_timeout_s=0.3),
    3: LevelPolicy(default_timeout_s=0.2, allow_timeout_override=True, timeout_action="DELAY"),
    4: LevelPolicy(max_queue_size=40, allow_timeout_override=True)})


def _mixed_producer(url: str, name: str, seed: int, results) -> None:
    q = RedisPriorityQueue(url, name, policy=MIXED_POLICY)
    rng = random.Random(seed)
    admitted, rejected = dict.fromkeys(range(1, 5), 0), dict.fromkeys(range(1, 5), 0)
    for t in make_workload(250, seed=seed):
        own = rng.uniform(0.02, 0.15) if t.priority in (3, 4) and rng.random() < 0.5 else None
        try:
            q.put(t, request_timeout_s=own)
            admitted[t.priority] += 1
        except Rejected:
            rejected[t.priority] += 1
    results.put({"admitted": admitted, "rejected": rejected})


def _mixed_consumer(url: str, name: str, stop, results) -> None:
    """Claims and acknowledges, slower than the producers: levels fill, requests time out."""
    q = RedisPriorityQueue(url, name, policy=MIXED_POLICY)
    served, redelivered, lost = dict.fromkeys(range(1, 5), 0), [], 0
    while not stop.is_set():
        claims = q.claim(count=2, lease_s=WAIT_S)  # never lapses: only the killed one's do
        for claim, status in zip(claims, q.ack_each(*claims), strict=True):
            lost += status is not AckStatus.ACKED
            served[claim.task.priority] += 1
            if claim.deliveries > 1:
                redelivered.append(claim.task_id)
        time.sleep(0.01)
    results.put({"served": served, "redelivered": redelivered, "lost": lost})


def _claim_and_hang(url: str, name: str, claimed, results) -> None:
    q = RedisPriorityQueue(url, name, policy=MIXED_POLICY)
    give_up = time.monotonic() + WAIT_S
    while not (claims := q.claim(count=3, lease_s=LEASE_S)):
        assert time.monotonic() < give_up
        time.sleep(0.01)
    results.put({"held": [c.task_id for c in claims]})
    results.close()
    results.join_thread()  # on its way to the parent before the parent kills this process
    claimed.set()
    time.sleep(WAIT_S)


@pytest.mark.slow
def test_conservation_is_exact_with_cancels_and_a_killed_consumer(server):
    q = make(server, MIXED_POLICY)
    ctx = multiprocessing.get_context("spawn")
    stop, claimed, results = ctx.Event(), ctx.Event(), ctx.Queue()
    hung = ctx.Process(target=_claim_and_hang, args=(server.url, q.name, claimed, results))
    producers = [ctx.Process(target=_mixed_producer, args=(server.url, q.name, seed, results))
                 for seed in range(4)]
    consumer = ctx.Process(target=_mixed_consumer, args=(server.url, q.name, stop, results))
    for p in (hung, *producers, consumer):
        p.start()
    assert claimed.wait(WAIT_S)
    os.kill(hung.pid, signal.SIGKILL)
    hung.join(WAIT_S)

    rng, cancelled, expired, snapshots = random.Random(5), [], [], 0
    while any(p.is_alive() for p in producers):  # random cancels, drains, snapshots meanwhile
        task_id = rng.randint(1, int(q.command("GET", q.keys[0]) or 1))
        if q.cancel(task_id):
            cancelled.append(task_id)
        if rng.random() < 0.1:
            expired += q.drain_expired()
        snapshot = q.snapshot()
        assert all(conserved(row) for row in snapshot.values()), snapshot
        snapshots += 1
    stop.set()
    tallies = [results.get(timeout=WAIT_S) for _ in range(6)]
    consumer.join(WAIT_S)
    made = [t for t in tallies if "admitted" in t]
    (took,) = [t for t in tallies if "served" in t]
    (held,) = [t["held"] for t in tallies if "held" in t]
    served, redelivered = took["served"], took["redelivered"]
    assert took["lost"] == 0
    wait_until_expired(q, 2)  # what still waits at REJECT level 2 has timed out
    give_up = time.monotonic() + WAIT_S  # the killed consumer's leases run out, then all go
    while q.qsize() or q.inflight():
        assert time.monotonic() < give_up, "the queue never emptied"
        for claim in q.claim(count=8):
            assert q.ack(claim) == 1
            served[claim.task.priority] += 1
            if claim.deliveries > 1:
                redelivered.append(claim.task_id)
        time.sleep(0.01)
    expired += q.drain_expired()

    final = q.snapshot()
    for level, row in final.items():
        assert row["queued"] == row["inflight"] == 0 and conserved(row), (level, row)
        assert row["admitted"] == sum(t["admitted"][level] for t in made)
        assert row["rejected"] == sum(t["rejected"][level] for t in made)
        assert row["served"] == served[level]
        assert row["expired"] == sum(t.priority == level for t in expired)
    assert sum(row["cancelled"] for row in final.values()) == len(cancelled) > 0
    assert sum(row["redelivered"] for row in final.values()) == len(held)
    # each came back once, as a redelivery, then was served or cancelled
    assert sorted(redelivered + [i for i in cancelled if i in held]) == sorted(held)
    assert sum(row["dead_lettered"] for row in final.values()) == 0
    assert final[2]["expired"] > 0 and final[3]["expired"] == 0  # REJECT expires, DELAY waits
    assert snapshots > 0 and stored_ids(q) == 0
    q.delete()


# -- the failure tests, with a policy active ---------------------------------------------

RESTART_POLICY = QueuePolicy(LevelPolicy(max_queue_size=100_000, default_timeout_s=600.0,
                                         allow_timeout_override=True))
CRASH_AFTER = 200


@pytest.fixture
def own_server():
    srv = private_server()
    yield srv
    srv.stop()


@pytest.mark.slow
def test_restarted_server_keeps_every_acknowledged_enqueue_and_its_counts(own_server):
    q = make(own_server, RESTART_POLICY, lease_s=LEASE_S, reconnect_s=20.0)
    workload = make_workload(1_000, seed=2)
    acknowledged, taken, errors = [], [], []
    producing, paused, resumed = threading.Event(), threading.Event(), threading.Event()

    def produce() -> None:
        try:
            for t in workload:
                if len(acknowledged) == CRASH_AFTER:
                    paused.set()
                    resumed.wait(30)
                q.put(t, request_timeout_s=300.0)
                acknowledged.append(t.task_id)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
        finally:
            producing.clear()

    def consume() -> None:
        try:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                claims = q.claim(count=4)
                if claims:
                    q.ack(*claims)
                    taken.extend(c.task.task_id for c in claims)
                elif not producing.is_set() and q.qsize() == 0 and q.inflight() == 0:
                    return
                else:
                    time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    producing.set()
    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    assert paused.wait(30), errors
    own_server.kill()
    resumed.set()
    time.sleep(0.3)
    own_server.start()  # replays its append-only file: the policy and the counters too
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert len(acknowledged) == len(workload) and set(acknowledged) <= set(taken)
    final = q.snapshot()
    assert sum(row["admitted"] for row in final.values()) == len(workload)  # none twice
    for row in final.values():
        assert row["served"] == row["admitted"] and conserved(row), final
    assert RedisPriorityQueue(own_server.url, q.name, policy=RESTART_POLICY).qsize() == 0


def test_policed_clients_fail_clearly_when_the_server_stays_down(own_server):
    q = make(own_server, RESTART_POLICY, reconnect_s=1.0)
    q.put(task(1, 1))
    own_server.kill()
    with pytest.raises(RedisUnavailable, match=own_server.url):
        q.put(task(1, 2))
    with pytest.raises(RedisUnavailable, match=own_server.url):
        make(own_server, RESTART_POLICY, reconnect_s=1.0)


# -- one rule for a full REJECT level, in process and on Redis -------------------------------


def full_level_sequence(q) -> tuple[list[str], dict[str, int]]:
    """LOW holds 2: A (10 s), B (its own 50 ms) behind it; B expires; C, then D arrive."""
    outcomes = []

    def put(seq, **kwargs):
        try:
            q.put(task(LOW, seq), **kwargs)
            outcomes.append("admitted")
        except Rejected:
            outcomes.append("rejected")

    put(1)
    put(2, request_timeout_s=0.05)
    time.sleep(0.2)  # B's deadline (50 ms after its put returned, at the latest) has passed
    put(3)  # the level is full, but B expired: B goes, C is admitted
    put(4)  # A and C are live: full, rejected
    counts = q.counts()[LOW]
    return outcomes, {k: counts[k] for k in ("admitted", "rejected", "expired")}


LOW = int(Priority.LOW)
SHORT_BEHIND_LONG = QueuePolicy(LevelPolicy(), levels={LOW: LevelPolicy(
    max_queue_size=2, default_timeout_s=10.0, allow_timeout_override=True)})


def test_a_full_reject_level_drops_every_expired_request_in_process_and_on_redis(server):
    in_process = full_level_sequence(create_queue("ThreadSafeBucketQueue",
                                                  policy=SHORT_BEHIND_LONG))
    on_redis = full_level_sequence(RedisPriorityQueue(server.url, policy=SHORT_BEHIND_LONG,
                                                      owner=True))
    expected = (["admitted", "admitted", "admitted", "rejected"],
                {"admitted": 3, "rejected": 1, "expired": 1})
    assert in_process == on_redis == expected
