"""Resends after a lost reply: each script runs once however often it is sent.

A proxy (``ReplyDropper``) passes one command to Redis, lets Redis apply it,
and drops the connection before the reply reaches the client; the client
reconnects and sends the same request again. The control tests send the same
scripts without a reply record, as main's client did, and show the duplicate
that the record prevents.
"""

from __future__ import annotations

import pickle
import random
import threading
import time

import pytest
from redis.exceptions import ResponseError
from redis_helpers import ReplyDropper, dead_url, evalsha_of, private_server

from pqlab.core.task import Priority, Task
from pqlab.queues.redisqueue import (
    ACK,
    CLAIM,
    ENQUEUE,
    AckStatus,
    Backoff,
    RedisPriorityQueue,
    pack,
)
from pqlab.queues.redisserver import RedisUnavailable


@pytest.fixture(scope="module")
def server():
    srv = private_server()
    yield srv
    srv.stop()


@pytest.fixture
def proxy(server):
    dropper = ReplyDropper(server.port)
    yield dropper
    dropper.close()


@pytest.fixture
def q(proxy):
    queue = RedisPriorityQueue(proxy.url)
    for script in (ENQUEUE, CLAIM, ACK):  # loaded: a first send is never NOSCRIPT
        queue.command("SCRIPT", "LOAD", script.source)
    yield queue
    queue.delete()


def task(priority: int, seq: int) -> Task:
    return Task(priority, seq, 0.0, f"task-{seq}", "model-0", None)


@pytest.mark.redis
def test_resent_enqueue_lands_once(q, proxy):
    proxy.drop_next(evalsha_of(ENQUEUE.sha))
    task_id = q.put(task(Priority.NORMAL, 1))
    assert proxy.swallowed == [[b"0", str(task_id).encode()]]  # the lost send enqueued it
    assert proxy.sent(evalsha_of(ENQUEUE.sha)) == 2
    assert q.qsize() == 1


@pytest.mark.redis
def test_resent_claim_returns_what_the_first_one_claimed(q, proxy):
    for seq, priority in enumerate([Priority.LOW, Priority.CRITICAL, Priority.HIGH]):
        q.put(task(priority, seq))
    proxy.drop_next(evalsha_of(CLAIM.sha))
    (claim,) = q.claim()
    (lost,) = proxy.swallowed
    assert lost[0] == b"0" and proxy.sent(evalsha_of(CLAIM.sha)) == 2
    token, task_id, deliveries = map(int, lost[1][:3])
    assert (claim.token, claim.task_id, claim.deliveries) == (token, task_id, deliveries)
    assert claim.task.priority == Priority.CRITICAL
    assert q.inflight() == 1 and q.qsize() == 2  # nothing else was taken
    assert q.ack(claim) == 1


@pytest.mark.redis
def test_resent_ack_says_already_acknowledged(q, proxy):
    q.put(task(Priority.HIGH, 1))
    q.put(task(Priority.HIGH, 2))
    first, second = q.claim(), q.claim()
    assert q.ack_each(*first) == [AckStatus.ACKED]
    proxy.drop_next(evalsha_of(ACK.sha))
    assert q.ack_each(*first, *second) == [AckStatus.LEASE_LOST, AckStatus.ALREADY_ACKED]
    assert proxy.swallowed == [[b"0", [b"0", b"1"]]]  # the lost send removed the second
    assert q.inflight() == 0 and q.qsize() == 0
    assert q.ack_each(*second) == [AckStatus.LEASE_LOST]  # another call, not a resend


@pytest.mark.redis
def test_resent_ack_counts_as_acknowledged(q, proxy):
    q.put(task(Priority.HIGH, 1))
    claims = q.claim()
    proxy.drop_next(evalsha_of(ACK.sha))
    assert q.ack(*claims) == 1


@pytest.mark.slow
def test_server_that_applies_a_claim_and_dies_answers_the_resend():
    # Its own server: this test kills it. The record is written with the claim,
    # so the restarted server replays both from its append-only file.
    srv = private_server()
    dropper = ReplyDropper(srv.port)
    sleeps, down = [], threading.Event()
    backoff = Backoff(sleep=lambda s: (sleeps.append(s), time.sleep(s)))
    q = RedisPriorityQueue(dropper.url, reconnect_s=30.0, backoff=backoff)
    try:
        q.put(task(Priority.LOW, 1))
        q.put(task(Priority.CRITICAL, 2))

        def crash() -> None:
            srv.kill()
            down.set()

        def restart() -> None:
            if down.wait(30):
                time.sleep(0.3)  # down for a while: the client's reconnects fail and back off
                srv.start()

        restarter = threading.Thread(target=restart)
        restarter.start()
        dropper.drop_next(evalsha_of(CLAIM.sha), on_drop=crash)
        (claim,) = q.claim()
        restarter.join(30)
        token, task_id = map(int, dropper.swallowed[0][1][:2])
        assert (claim.token, claim.task_id, claim.task.seq) == (token, task_id, 2)
        assert sleeps and all(0 <= s <= backoff.cap_s for s in sleeps)
        assert q.inflight() == 1 and q.qsize() == 1
    finally:
        dropper.close()
        srv.stop()


def _raw(q: RedisPriorityQueue, sha: str, *args):
    """The script called without a reply record (main's client; redis-benchmark)."""
    return q.command("EVALSHA", sha, len(q.keys), *q.keys, *args)


@pytest.mark.redis
def test_control_without_the_record_a_resent_enqueue_lands_twice(q, proxy):
    proxy.drop_next(evalsha_of(ENQUEUE.sha))
    _raw(q, ENQUEUE.sha, 3, '[3,1,0.0,"task-1","model-0",null]')
    assert q.qsize() == 2


@pytest.mark.redis
def test_control_without_the_record_a_resent_claim_takes_another_task(q, proxy):
    for seq in (1, 2):
        q.put(task(Priority.HIGH, seq))
    proxy.drop_next(evalsha_of(CLAIM.sha))
    _, claimed = _raw(q, CLAIM.sha, 1, 30_000, 5, 100)
    (lost,) = proxy.swallowed
    assert lost[1][1] == b"1" and claimed[1] == b"2"  # the lost send held task 1
    assert q.inflight() == 2 and q.qsize() == 0  # task 1 waits out its lease


@pytest.mark.redis
def test_control_without_the_record_a_resent_ack_says_lease_lost(q, proxy):
    q.put(task(Priority.HIGH, 1))
    (claim,) = q.claim()
    proxy.drop_next(evalsha_of(ACK.sha))
    assert _raw(q, ACK.sha, claim.task_id, claim.token) == [0, [0]]
    assert proxy.swallowed == [[b"0", [b"1"]]] and q.inflight() == 0


@pytest.mark.redis
def test_stale_copy_of_an_older_request_is_refused_not_run(server):
    q = RedisPriorityQueue(server.url)
    q.put(task(Priority.HIGH, 1))
    q.put(task(Priority.HIGH, 2))  # request 2 recorded
    client = q._client()
    keys = (*q.keys, client.record_key)
    stale = pack("EVALSHA", ENQUEUE.sha, len(keys), *keys, 3, "[]", 1, client.record_ms)
    with pytest.raises(ResponseError, match="stale request"):
        q._send(stale)
    assert q.qsize() == 2
    q.delete()


@pytest.mark.redis
def test_one_record_per_client_thread_living_record_s(server):
    q = RedisPriorityQueue(server.url)
    for seq in range(20):
        q.put(task(Priority.LOW, seq))
    other = threading.Thread(target=q.claim)
    other.start()
    other.join(30)
    records = q.command("KEYS", f"{{pqlab:{q.name}}}:reply:*")
    assert len(records) == 2  # this thread's and the other's, not one per call
    for key in records:
        assert 0 < q.command("PTTL", key) <= q.record_s * 1000
    q.delete()


class FakeClock:
    def __init__(self) -> None:
        self.now_s, self.sleeps = 0.0, []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds

    def now(self) -> float:
        return self.now_s


@pytest.mark.parametrize("reconnect_s", [10.0, 0.5])
def test_backoff_doubles_to_its_cap_then_gives_up_on_time(reconnect_s):
    # Powers of two: the waits add up exactly.
    clock, url = FakeClock(), dead_url()
    backoff = Backoff(base_s=1 / 16, cap_s=1.0, rng=lambda: 1.0, sleep=clock.sleep,
                      clock=clock.now)
    q = RedisPriorityQueue(url, reconnect_s=reconnect_s, backoff=backoff)
    with pytest.raises(RedisUnavailable, match=url):
        q.put(task(Priority.HIGH, 1))
    expected = {10.0: [1 / 16, 1 / 8, 1 / 4, 1 / 2] + [1.0] * 9 + [1 / 16],
                0.5: [1 / 16, 1 / 8, 1 / 4, 1 / 16]}[reconnect_s]
    assert clock.sleeps == expected and clock.now_s == reconnect_s


def test_backoff_jitter_is_full():
    rng = random.Random(7)
    backoff = Backoff(base_s=0.02, cap_s=1.0, rng=rng.random)
    waits = [[backoff.delay_s(attempt) for attempt in range(12)] for _ in range(200)]
    bounds = [min(1.0, 0.02 * 2**n) for n in range(12)]
    assert all(0 <= w <= b for row in waits for w, b in zip(row, bounds, strict=True))
    for n, bound in enumerate(bounds):  # spread over the whole range, not clustered at the top
        column = [row[n] for row in waits]
        assert min(column) < 0.1 * bound and max(column) > 0.9 * bound


def test_pickled_queues_jitter_apart():
    q = RedisPriorityQueue(dead_url(), backoff=Backoff(0.1, 2.0, rng=lambda: 1.0))
    copies = [pickle.loads(pickle.dumps(q)) for _ in range(2)]
    assert all((c.backoff.base_s, c.backoff.cap_s) == (0.1, 2.0) for c in copies)
    waits = [[c.backoff.delay_s(5) for _ in range(3)] for c in copies]
    assert waits[0] != waits[1]  # each copy draws its own numbers
