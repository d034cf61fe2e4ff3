import queue
import threading
import time

import pytest

from pqlab.core.task import Priority, Task, make_workload, next_seq
from pqlab.queues.storage import HeapStorage
from pqlab.queues.syncqueue import BucketQueue, ShutDown, SyncQueue, ThreadSafeBucketQueue
from pqlab.queues.waiters import Waiters


class HeapSyncQueue(HeapStorage, SyncQueue):
    """The heap policy in the same base class."""


QUEUE_CLASSES = [ThreadSafeBucketQueue, HeapSyncQueue]


def task(priority=Priority.NORMAL) -> Task:
    return Task(priority, next_seq(), 0.0, "t", "m", {})


def started(target, *args) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("cls", QUEUE_CLASSES)
def test_orders_by_priority_then_fifo(cls):
    q = cls()
    tasks = make_workload(500, seed=3)
    for t in tasks:
        q.put(t)
    assert q.qsize() == 500 and not q.empty() and not q.full()
    assert [q.get() for _ in tasks] == sorted(tasks)
    assert q.empty()


@pytest.mark.parametrize("cls", QUEUE_CLASSES)
def test_nonblocking_calls_and_timeouts(cls):
    q = cls(maxsize=1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    q.put_nowait(task())
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(task())
    start = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(task(), timeout=0.05)
    assert time.monotonic() - start >= 0.045
    with pytest.raises(ValueError, match="non-negative"):
        q.put(task(), timeout=-0.1)
    q.get()
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-0.1)


def test_a_bounded_put_waits_for_a_get():
    q = ThreadSafeBucketQueue(maxsize=2)
    first, second, third = task(Priority.LOW), task(Priority.HIGH), task(Priority.CRITICAL)
    q.put(first)
    q.put(second)
    putter = started(q.put, third)
    time.sleep(0.05)
    assert putter.is_alive() and q.qsize() == 2
    assert q.get() is second
    putter.join(5)
    assert not putter.is_alive()
    assert [q.get(), q.get()] == [third, first]


def test_a_refused_priority_changes_nothing():
    q = ThreadSafeBucketQueue(levels=(1, 2))
    with pytest.raises(ValueError, match="levels 1, 2"):
        q.put(task(Priority.LOW))
    assert q.qsize() == 0 and q.unfinished_tasks == 0


def test_join_waits_for_every_task_done():
    q = ThreadSafeBucketQueue()
    for _ in range(3):
        q.put(task())
    joiner = started(q.join)
    for _ in range(3):
        q.get()
        time.sleep(0.01)
        assert joiner.is_alive()
        q.task_done()
    joiner.join(5)
    assert not joiner.is_alive()
    with pytest.raises(ValueError, match="too many"):
        q.task_done()


def test_shutdown_counts_dropped_items_done():
    q = ThreadSafeBucketQueue()
    for _ in range(4):
        q.put(task())
    q.get()
    q.task_done()
    q.shutdown(immediate=True)
    assert q.unfinished_tasks == 0 and q.qsize() == 0
    with pytest.raises(ShutDown):
        q.put(task())
    with pytest.raises(ShutDown):
        q.get(timeout=1)
    q.join()  # returns at once


def test_timed_out_getters_leave_no_wakeup_unaccounted():
    """Getters with tiny timeouts race every put; afterwards blocked getters still get woken."""
    q = ThreadSafeBucketQueue()
    stop = threading.Event()
    served = []

    def tiny() -> None:
        while not stop.is_set():
            try:
                served.append(q.get(timeout=0.0001))
            except queue.Empty:
                pass

    racers = [started(tiny) for _ in range(4)]
    blocked = [started(lambda: served.append(q.get())) for _ in range(4)]
    for _ in range(400):
        q.put(task())
    deadline = time.monotonic() + 10
    while q.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in racers:
        t.join(5)
    left = sum(t.is_alive() for t in blocked)
    for _ in range(left):
        q.put(task())
    for t in blocked:
        t.join(5)
    assert not any(t.is_alive() for t in blocked)
    assert len(served) == 400 + left and q.qsize() == 0
    assert q.not_empty.woken == 0 and not q.not_empty.waiting


def test_bucket_queue_is_the_storage_alone():
    q = BucketQueue()
    assert q.put == q._put  # one call per put, no lock
    tasks = make_workload(200, seed=4)
    for t in tasks:
        q.put(t)
    assert q.qsize() == 200
    assert [q.get() for _ in tasks] == sorted(tasks)
    with pytest.raises(queue.Empty):
        q.get()
    assert q.empty()
    with pytest.raises(ValueError, match="levels 1, 2, 3"):
        BucketQueue(levels=(1, 2, 3)).put(task(Priority.LOW))


class FakeWaiter:
    def __init__(self, alive=True) -> None:
        self.alive, self.released = alive, False

    def release(self):
        self.released = True
        return None if self.alive else False


def test_waiters_account_for_every_wakeup():
    w = Waiters(threading.Lock())
    first, gone, second = FakeWaiter(), FakeWaiter(alive=False), FakeWaiter()
    w.waiting.extend([first, gone, second])
    w.notify()
    assert first.released and w.woken == 1
    w.pass_on(True)  # one is on its way: no second wake-up
    assert not gone.released
    assert w.settle(first) is True and w.woken == 0
    w.pass_on(True)  # the dead waiter is skipped, the next one woken
    assert gone.released and second.released and w.woken == 1
    assert w.settle(second, released=True) and w.woken == 0
    late = FakeWaiter()
    w.waiting.append(late)
    assert w.settle(late) is False and not w.waiting  # timed out, never notified
