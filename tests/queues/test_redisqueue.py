"""The Redis queue on a real private redis-server: ordering, claim/ack, reaper, dead letters."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import weakref

import pytest
from redis_helpers import dead_url, private_server

import pqlab
from pqlab.core.task import STOP, Priority, Task, make_workload, stop_sentinels
from pqlab.queues.rediskeys import PRIORITY_SHIFT
from pqlab.queues.redisqueue import (
    ENQUEUE,
    RedisPriorityQueue,
    decode_task,
    encode_task,
    make_queue,
)
from pqlab.queues.redisserver import RedisUnavailable

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server():
    srv = private_server()
    yield srv
    srv.stop()


@pytest.fixture
def q(server):
    queue = RedisPriorityQueue(server.url, lease_s=0.3, max_deliveries=2, block_s=0.2)
    yield queue
    queue.delete()


def task(priority: int, seq: int, payload=None) -> Task:
    return Task(priority, seq, 0.0, f"task-{seq}", "model-0", payload)


def test_priority_first_then_fifo(q):
    tasks = make_workload(200, seed=3)
    for t in tasks:
        q.put(t)
    assert q.qsize() == 200
    taken = [q.get() for _ in range(200)]
    assert [t.key for t in taken] == sorted(t.key for t in tasks)
    assert q.qsize() == 0 and q.inflight() == 0


def test_fifo_within_a_priority_follows_arrival(q):
    for seq in (30, 10, 20):  # arrival order differs from creation order
        q.put(task(Priority.NORMAL, seq))
    q.put(task(Priority.HIGH, 99))
    assert [q.get().seq for _ in range(4)] == [99, 30, 10, 20]


def test_scores_are_exact_near_the_sequence_limit(q):
    q.command("SET", q.keys[0], PRIORITY_SHIFT - 3)
    q.put(task(Priority.LOW, 1))
    q.put(task(Priority.LOW, 2))
    scores = [int(q.command("ZSCORE", q.keys[1], member))
              for member in q.command("ZRANGE", q.keys[1], 0, -1)]
    expected = [4 * PRIORITY_SHIFT + PRIORITY_SHIFT - 2, 4 * PRIORITY_SHIFT + PRIORITY_SHIFT - 1]
    assert scores == expected
    assert [t.task.seq for t in q.claim(count=2)] == [1, 2]
    with pytest.raises(Exception, match="sequence exhausted"):
        q.put(task(Priority.LOW, 3))


def test_priority_out_of_range_is_refused(q):
    with pytest.raises(ValueError, match="priority must be 0-31"):
        q.put(task(32, 1))


def test_claim_takes_a_batch_in_order(q):
    for seq, p in enumerate([4, 1, 3, 1, 2]):
        q.put(task(p, seq))
    claims = q.claim(count=3)
    assert [c.task.key for c in claims] == [(1, 1), (1, 3), (2, 4)]
    assert len({c.token for c in claims}) == 1 and all(c.deliveries == 1 for c in claims)
    assert q.inflight() == 3 and q.qsize() == 2
    assert q.ack(*claims) == 3
    assert q.inflight() == 0


def test_ack_removes_only_with_the_matching_token(q):
    q.put(task(1, 1))
    (claim,) = q.claim()
    forged = type(claim)(claim.task, claim.task_id, claim.token + 1, 1)
    assert q.ack(forged) == 0
    assert q.ack(claim) == 1
    assert q.ack(claim) == 0


def test_reaper_returns_an_expired_lease_to_its_place(q):
    q.put(task(Priority.LOW, 1))
    (first,) = q.claim()
    q.put(task(Priority.LOW, 2))  # arrived later: must stay behind task 1
    time.sleep(0.4)
    assert q.reap() == (1, 0)
    claims = q.claim(count=2)
    assert [c.task.seq for c in claims] == [1, 2]
    assert claims[0].deliveries == 2 and claims[0].token != first.token
    assert q.ack(first) == 0  # the old lease no longer counts


@pytest.mark.timing
def test_claim_reaps_on_its_own(q):
    q.put(task(1, 1))
    start = time.monotonic()
    q.claim()
    deadline = start + 10
    while not (claims := q.claim()):
        assert time.monotonic() < deadline, "the expired lease never came back"
        time.sleep(0.01)
    # Polled, not slept: a descheduled test sees the task back later, never before the
    # lease (server clock in whole ms, hence 2 ms of slack); one handed out early fails.
    assert time.monotonic() - start >= q.lease_s - 0.002
    (again,) = claims
    assert again.task.seq == 1 and again.deliveries == 2


def test_a_task_failing_too_often_is_dead_lettered(q):
    q.put(task(2, 7, {"input_size": 3}))
    for _ in range(2):  # max_deliveries=2
        assert len(q.claim()) == 1
        time.sleep(0.4)
    assert q.reap() == (0, 1)
    assert q.qsize() == 0 and q.inflight() == 0
    assert [t.task_id for t in q.dead_letters()] == ["task-7"]


def test_blocked_get_wakes_on_put(server):
    q = RedisPriorityQueue(server.url, block_s=30.0)  # a wake-up, never the timeout, ends get()
    got = []
    consumer = threading.Thread(target=lambda: got.append(q.get()), daemon=True)
    consumer.start()
    time.sleep(0.2)
    q.put(task(1, 5))
    consumer.join(10.0)
    assert [t.seq for t in got] == [5]
    q.delete()


def test_count_buffers_a_batch_per_thread(server):
    q = RedisPriorityQueue(server.url, count=4)
    for seq in range(6):
        q.put(task(3, seq))
    assert [q.get().seq for _ in range(6)] == list(range(6))
    assert q.inflight() == 0
    q.delete()


def test_a_failed_put_back_of_a_stop_sentinel_keeps_the_task_for_the_next_get(
        server, monkeypatch):
    """``get`` acknowledges the batch before putting surplus sentinels back: if that put
    fails, the task it was going to return is not lost but handed out next time."""
    q = RedisPriorityQueue(server.url, count=3)
    q.put(task(1, 1))
    for sentinel in stop_sentinels(2):
        q.put(sentinel)
    script = q._script

    def no_enqueue(which, *args):
        if which is ENQUEUE:
            raise RedisUnavailable("lost Redis (test)")
        return script(which, *args)

    monkeypatch.setattr(q, "_script", no_enqueue)
    with pytest.raises(RedisUnavailable):
        q.get()
    monkeypatch.undo()
    assert q.get_nowait().seq == 1
    q.delete()


def test_lost_script_cache_is_reloaded(q):
    q.put(task(1, 1))
    q.command("SCRIPT", "FLUSH")
    q.put(task(1, 2))
    assert [q.get().seq for _ in range(2)] == [1, 2]


def test_pickled_queue_is_the_same_queue(q):
    q.put(task(1, 1))
    copy = pickle.loads(pickle.dumps(q))
    assert copy.name == q.name and copy.qsize() == 1
    assert all(k.startswith(f"{{pqlab:{q.name}}}:") for k in q.keys)


def test_codec_round_trip_keeps_fields_and_stop():
    t = Task(2, 41, 1.5, "task-1", "model-3", {"input_size": 9})
    assert decode_task(encode_task(t)) == t and decode_task(encode_task(t)).payload == t.payload
    assert decode_task(encode_task(Task(4, 1, 0.0, "stop", "", STOP))).payload is STOP
    with pytest.raises(TypeError):
        encode_task(Task(1, 1, 0.0, "x", "m", object()))


def test_factory_queue_drops_its_keys_when_dropped(server):
    q = make_queue(url=server.url)
    q.put(task(1, 1))
    probe, keys = RedisPriorityQueue(server.url), q.keys
    del q
    gc.collect()
    assert probe.command("EXISTS", *keys) == 0


FORK = multiprocessing.get_context("fork")
FORK_PUTS = 50
WAIT_S = 60.0  # generous: a child that is not done by then has hung


def _take_then_put(q: RedisPriorityQueue, checked, first_seq: int) -> None:
    """In a forked child: the parent's buffered tasks must not be here; then FORK_PUTS puts."""
    try:
        q.get_nowait()  # nothing is queued: only the parent's buffer could answer
    except queue.Empty:
        pass
    else:
        os._exit(3)
    checked.set()
    for seq in range(first_seq, first_seq + FORK_PUTS):
        q.put(task(3, seq))


def test_a_queue_used_across_fork_stores_every_enqueue(server):
    """Issue 19, item 4: the child inherited the forking thread's connection, reply record
    and request numbers (and its buffer of taken tasks); the parent's and the child's same
    request number was answered from one record, so one of two enqueues was never stored."""
    q = RedisPriorityQueue(server.url, count=3)
    for seq in range(3):
        q.put(task(1, seq))
    assert q.get().seq == 0  # two more are in this thread's buffer when it forks
    checked = FORK.Event()
    child = FORK.Process(target=_take_then_put, args=(q, checked, 100))
    child.start()
    assert checked.wait(WAIT_S), f"the child took a task (exit code {child.exitcode})"
    for seq in range(1_000, 1_000 + FORK_PUTS):  # while the child puts its own
        q.put(task(3, seq))
    child.join(WAIT_S)
    assert child.exitcode == 0
    taken = [q.get().seq for _ in range(2 * FORK_PUTS + 2)]
    assert sorted(taken) == [1, 2, *range(100, 100 + FORK_PUTS), *range(1_000, 1_000 + FORK_PUTS)]
    assert q.qsize() == q.inflight() == 0
    q.delete()


def _run_own_finalizers(q: RedisPriorityQueue) -> None:
    """In a forked child: what its exit would do with ``q``'s finalizer (atexit runs it)."""
    for finalizer in list(weakref.finalize._registry):
        held = finalizer.peek()
        if held is not None and held[0] is q:
            finalizer()


def test_a_forked_child_leaves_its_parents_queue_alone(server):
    q = make_queue(url=server.url)
    q.put(task(1, 1))
    child = FORK.Process(target=_run_own_finalizers, args=(q,))
    child.start()
    child.join(WAIT_S)
    assert child.exitcode == 0
    assert q.qsize() == 1 and q.get().seq == 1


@pytest.mark.parametrize("options, field", [
    ({"lease_s": 0.0004}, "lease_s"), ({"lease_s": 0}, "lease_s"),
    ({"lease_s": float("nan")}, "lease_s"), ({"reconnect_s": 0}, "reconnect_s"),
    ({"reconnect_s": -1.0}, "reconnect_s"), ({"count": 0}, "count"), ({"count": True}, "count"),
    ({"max_deliveries": 0}, "max_deliveries"), ({"block_s": 0}, "block_s"),
    ({"retain": 0}, "retain")])
def test_bad_options_fail_naming_the_field_and_what_is_allowed(options, field):
    with pytest.raises(ValueError, match=f"^{field} must be .*(>= 1|>= 0.001|> 0).*, got "):
        RedisPriorityQueue(dead_url(), **options)


def test_claim_refuses_a_zero_count_or_lease_instead_of_taking_the_defaults(q):
    q.put(task(1, 1))
    for kwargs, field in (({"count": 0}, "count"), ({"count": -2}, "count"),
                          ({"lease_s": 0}, "lease_s"), ({"lease_s": 0.0004}, "lease_s")):
        with pytest.raises(ValueError, match=f"^{field} must be"):
            q.claim(**kwargs)
    with pytest.raises(ValueError, match="^limit must be an int >= 1, got 0"):
        q.reap(limit=0)
    assert q.qsize() == 1 and q.inflight() == 0  # nothing was claimed
    (claim,) = q.claim(lease_s=0.001)  # the shortest lease: one millisecond
    lease_ms = float(q.command("ZSCORE", q.keys[2], claim.task_id))
    seconds, micros = q.command("TIME")
    assert lease_ms <= int(seconds) * 1000 + int(micros) // 1000 + 1


@pytest.mark.parametrize("scenario", ["single", "threads"])
def test_runs_in_thread_scenarios(server, monkeypatch, scenario):
    monkeypatch.setenv("PQLAB_REDIS_URL", server.url)
    r = pqlab.run("redis", scenario, tasks=300, producers=2, consumers=2, seed=1)
    assert r.ok, r.error_messages
    assert r.bytes_per_task > 0 and r.extra["bytes_per_task_source"].endswith("stored_bytes()")


def test_import_starts_no_server_and_needs_none():
    code = ("import pqlab, pqlab.queues.redisserver as r, pqlab.queues.mpqueue as m; "
            "assert r._SHARED is None and m._MANAGER is None; print(sorted(pqlab.QUEUES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/nonexistent", "PYTHONPATH": ":".join(sys.path)},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "redis" in out.stdout and "multiprocessing" in out.stdout

