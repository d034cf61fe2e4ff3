"""The Redis queue when things break: a killed consumer, a restarted server, no server at all."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time

import pytest
from redis_helpers import dead_url, private_server

import pqlab
from pqlab.core.task import make_workload
from pqlab.queues.redisqueue import RedisPriorityQueue, make_queue
from pqlab.queues.redisserver import RedisUnavailable

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LEASE_S = 0.5
CRASH_AFTER = 200  # acknowledged puts before the server is killed


@pytest.fixture
def server():
    srv = private_server()
    yield srv
    srv.stop()


def _claim_then_hang(url: str, name: str, claimed) -> None:
    """A consumer that claims one task and is killed before it acknowledges."""
    RedisPriorityQueue(url, name, lease_s=LEASE_S).claim()
    claimed.set()
    time.sleep(60)


def test_task_of_a_killed_consumer_is_delivered_again(server):
    q = RedisPriorityQueue(server.url, lease_s=LEASE_S)
    tasks = make_workload(3, seed=1)
    for t in tasks:
        q.put(t)
    ctx = multiprocessing.get_context("spawn")
    claimed = ctx.Event()
    consumer = ctx.Process(target=_claim_then_hang, args=(server.url, q.name, claimed))
    consumer.start()
    assert claimed.wait(60)
    os.kill(consumer.pid, signal.SIGKILL)
    consumer.join(10)
    assert consumer.exitcode == -signal.SIGKILL and q.inflight() == 1

    seen, deliveries, deadline = [], {}, time.monotonic() + 10 * LEASE_S
    while len(seen) < len(tasks) and time.monotonic() < deadline:
        for claim in q.claim():
            assert q.ack(claim) == 1
            seen.append(claim.task.task_id)
            deliveries[claim.task.task_id] = claim.deliveries
        time.sleep(0.02)
    assert sorted(seen) == sorted(t.task_id for t in tasks)  # nothing lost, nothing twice
    assert sorted(deliveries.values()) == [1, 1, 2]  # the killed one came back after its lease
    assert q.qsize() == 0 and q.inflight() == 0


def test_restarted_server_keeps_every_acknowledged_enqueue(server):
    q = RedisPriorityQueue(server.url, lease_s=LEASE_S, reconnect_s=20.0)
    workload = make_workload(1_500, seed=2)
    acknowledged, taken, errors = [], [], []
    producing, paused, resumed = threading.Event(), threading.Event(), threading.Event()

    def produce() -> None:
        try:
            for t in workload:
                if len(acknowledged) == CRASH_AFTER:
                    paused.set()
                    resumed.wait(30)
                q.put(t)
                acknowledged.append(t.task_id)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
        finally:
            producing.clear()

    def consume() -> None:
        try:
            deadline = time.monotonic() + 60
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
    # The producer waits at CRASH_AFTER for the crash, so it lands mid-run however
    # slowly this thread is scheduled; it resumes into the dead server.
    assert paused.wait(30), errors
    server.kill()  # a crash: SIGKILL, no chance to flush anything
    resumed.set()
    time.sleep(0.3)
    server.start()  # same port, same directory: it replays its append-only file
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    assert len(acknowledged) == len(workload)
    assert set(acknowledged) <= set(taken)  # at-least-once: duplicates allowed, losses not


def test_clients_fail_clearly_when_the_server_stays_down(server):
    q = RedisPriorityQueue(server.url, reconnect_s=1.0, block_s=0.2)
    q.put(make_workload(1, seed=1)[0])
    q.get()
    failures = []

    def blocked_get() -> None:
        try:
            q.get()
        except RedisUnavailable as exc:
            failures.append(str(exc))

    consumer = threading.Thread(target=blocked_get)
    consumer.start()
    time.sleep(0.3)
    server.kill()
    with pytest.raises(RedisUnavailable, match=re.escape(server.url)):
        q.put(make_workload(1, seed=1)[0])
    consumer.join(10)
    assert not consumer.is_alive() and server.url in failures[0]


def test_no_server_from_the_start_fails_within_seconds(monkeypatch):
    url = dead_url()
    start = time.monotonic()
    with pytest.raises(RedisUnavailable, match=re.escape(url)):
        make_queue(url=url)
    monkeypatch.setenv("PQLAB_REDIS_URL", url)
    with pytest.raises(RedisUnavailable, match=re.escape(url)):
        pqlab.run("redis", "single", tasks=10)
    assert time.monotonic() - start < 10
