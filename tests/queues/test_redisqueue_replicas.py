"""The Redis queue on a replicated deployment: puts the replicas confirm, a demoted primary."""

from __future__ import annotations

import pickle
import time

import pytest

from pqlab.core.task import Task
from pqlab.queues.redisqueue import RedisPriorityQueue, ReplicationTimeout

pytestmark = pytest.mark.redis


def task(n: int) -> Task:
    return Task(1, n, 0.0, n, 0, f"payload {n}")


def test_a_put_the_replicas_did_not_confirm_raises_and_its_retry_does_not_enqueue_twice(
        deployment):
    q = RedisPriorityQueue(deployment.url, min_replicas=1, replica_timeout_ms=100, owner=True)
    assert pickle.loads(pickle.dumps(q)).min_replicas == 1
    first = q.put(task(1))
    replicas = deployment.replica_servers()
    try:
        for replica in replicas:
            deployment.pause(replica)
        with pytest.raises(ReplicationTimeout, match="is on the primary .* 0 of the 1 "
                                                     "replica") as caught:
            q.put(task(2))
    finally:
        for replica in replicas:
            deployment.resume(replica)
    assert caught.value.reply == first + 1 and q.qsize() == 2  # it stands on the primary
    deadline = time.monotonic() + 10.0
    while True:  # the replicas, continued, confirm the retry
        try:
            assert q.put(task(2)) == first + 1
            break
        except ReplicationTimeout:
            assert time.monotonic() < deadline, "the replicas never confirmed after SIGCONT"
    assert q.qsize() == 2
    assert q.put(task(2)) == first + 2  # a new call, not a retry


def test_a_readonly_reply_sends_the_queue_to_the_primary(deployment):
    q = RedisPriorityQueue(deployment.url, owner=True)
    conn = q._client().conn
    conn.disconnect()
    conn.port = deployment.replica_servers()[0].port  # as if the primary had been demoted
    conn.connect()
    assert q.put(task(1)) == 1 and q.qsize() == 1
    assert conn.port == deployment.primary_server().port
